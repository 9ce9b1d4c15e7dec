// An arch-neutral flattened device tree writer (Devicetree Specification v0.4; libfdt's
// sequential-write API) for `set fdt-dump-file` and for guests that boot from a DTB. The machine
// fills plain structs; build_fdt() turns them into a DTB that `dtc -I dtb` reads without warnings.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/result.hpp"

namespace qvm::fdt {

struct FdtRange {
  uint64_t base = 0;
  uint64_t size = 0;
};

// The interrupt controller all devices are wired to (root `interrupt-parent`). For an x86 IOAPIC:
// compatible "intel,ce4100-ioapic", 2 cells <gsi type> with type 1 = level high, 3 = edge rising
// (Linux arch/x86/kernel/devicetree.c); for an Arm GICv3 "arm,gic-v3" with 3 cells.
struct FdtInterruptController {
  std::string node_name = "interrupt-controller";
  std::string compatible = "intel,ce4100-ioapic";
  FdtRange reg;
  uint32_t interrupt_cells = 2;
};

// A device node `<name>@<reg base>` with compatible, reg and interrupts (cells as the controller
// expects). For x86 I/O-port devices (ns16550a at 0x3f8) `reg` holds the port number, with
// `reg-io-width`/`reg-shift` omitted.
struct FdtDevice {
  std::string node_name;   // "serial", "virtio_mmio", ...
  std::string compatible;  // "ns16550a", "virtio,mmio"
  FdtRange reg;
  std::vector<uint32_t> interrupts;
  std::optional<uint32_t> clock_frequency;  // UARTs: 1843200
};

struct FdtMachine {
  std::string model = "qvm";
  std::string compatible = "qvm,virtual-machine";
  uint32_t num_cpus = 1;                   // /cpus/cpu@N with reg N (the APIC id / MPIDR)
  std::string cpu_compatible;              // empty: none (x86); "arm,armv8" on Arm
  std::vector<FdtRange> memory;            // one /memory@base node each
  std::string bootargs;                    // /chosen bootargs
  std::optional<std::string> stdout_path;  // /chosen stdout-path, e.g. "/serial@3f8"
  std::optional<FdtRange> initrd;          // /chosen linux,initrd-start/-end
  FdtInterruptController intc;
  std::vector<FdtDevice> devices;
};

// Builds the DTB (#address-cells = #size-cells = 2 at the root). Fails on empty names or if
// libfdt reports an error.
Result<std::vector<uint8_t>> build_fdt(const FdtMachine& m);

}  // namespace qvm::fdt
