// The x86 machine as the firmware tables see it. The machine layer fills a MachineLayout from the
// built VM (memory, vdevs, GSIs); the pure builders in this folder turn it into E820 maps
// (e820.hpp), ACPI tables (acpi.hpp) and an MP table (mptable.hpp). Nothing here touches KVM.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "arch/x86/board.hpp"

namespace qvm::arch::x86 {

// A guest-physical range [base, base + size).
struct MemRange {
  uint64_t base = 0;
  uint64_t size = 0;
  uint64_t end() const { return base + size; }
};

// MPS INTI flags (MP spec 1.4 §4.3.4, ACPI 6.4 §5.2.12.5 Table 5.26): polarity bits 1:0, trigger
// mode bits 3:2. 0 = "conforms to the bus" (ISA: edge, active high).
inline constexpr uint16_t kIntiConforms = 0x0;
inline constexpr uint16_t kIntiActiveHigh = 0x1;
inline constexpr uint16_t kIntiActiveLow = 0x3;
inline constexpr uint16_t kIntiEdge = 0x1 << 2;
inline constexpr uint16_t kIntiLevel = 0x3 << 2;

// An ISA IRQ that is not identity-mapped to a GSI, or whose trigger/polarity differ from ISA's
// (MADT Interrupt Source Override, ACPI 6.4 §5.2.12.5; MP I/O interrupt entry, MP spec §4.3.4).
struct IsaIrqOverride {
  uint8_t isa_irq = 0;
  uint32_t gsi = 0;
  uint16_t flags = kIntiConforms;
};

// The IOAPIC (82093AA). The builders assume one IOAPIC; its pins are GSIs gsi_base..+pins-1.
struct IoApicInfo {
  uint64_t mmio_addr = kBoard.ioapic_addr;
  uint8_t id = 0;  // APIC ID of the IOAPIC (MADT, MP table). Distinct from the vCPUs' ids ideally.
  uint32_t gsi_base = 0;
  uint32_t pins = kBoard.ioapic_pins;
};

// A legacy device described in the DSDT under \_SB (ACPI 6.4 §6.1.5 _HID, §6.2.2 _CRS).
struct IsaDevice {
  std::string hid;       // EISA id, 7 chars: "PNP0501" 16550 UART, "PNP0B00" RTC, "PNP0303" i8042
  uint16_t io_base = 0;  // first I/O port (IO descriptor, ACPI 6.4 §6.4.2.5)
  uint8_t io_len = 0;    // number of ports; 0 = no IO resource
  std::optional<uint8_t> irq;  // ISA IRQ (IRQNoFlags descriptor, ACPI 6.4 §6.4.2.1)
  uint16_t io2_base = 0;       // optional second I/O range, e.g. the i8042 command port 0x64
  uint8_t io2_len = 0;
};

// A virtio-mmio transport (virtio 1.2 §4.2), described in the DSDT as "LNRO0005" (Linux
// virtio_mmio ACPI match) with a Memory32Fixed and an edge-triggered, active-high Interrupt.
struct VirtioMmioInfo {
  uint64_t base = 0;  // below 4 GiB (Memory32Fixed)
  uint32_t size = 0x200;
  uint32_t gsi = 0;
};

// A memory-mapped device for drivers that match devicetree `compatible` strings: _HID "PRP0001"
// with a _DSD "compatible" property (ACPI 6.4 §6.2.5; the device-properties UUID
// daffd814-6eba-4d8c-8a91-bc9bbf4aa301), a Memory32Fixed and a level-triggered, active-high
// Interrupt (qvm's shmem factory page: docs/shmem.md).
struct CompatibleMmioInfo {
  std::string compatible;
  uint64_t base = 0;  // below 4 GiB (Memory32Fixed)
  uint32_t size = 0;
  uint32_t gsi = 0;
};

// The PCI host bridge's ECAM window (PCIe 4.0 §7.2.2; ACPI MCFG). Reserved in E820 so guests
// trust it (Linux checks MMCONFIG areas against E820 or motherboard resources).
struct PciHostInfo {
  uint64_t ecam_base = kBoard.ecam_base;
  uint8_t bus_start = 0;
  uint8_t bus_end = 0;
  uint64_t ecam_size() const { return (static_cast<uint64_t>(bus_end - bus_start) + 1) << 20; }
  // Windows the root bridge decodes for BARs (the DSDT's PCI0 _CRS).
  uint32_t mmio_base = static_cast<uint32_t>(kBoard.pci_mmio_base),
           mmio_limit = static_cast<uint32_t>(kBoard.pci_mmio_end - 1);
  uint16_t io_base = static_cast<uint16_t>(kBoard.pci_io_base),
           io_limit = static_cast<uint16_t>(kBoard.pci_io_end - 1);
  // INTx routing (PCI0 _PRT): pin P (0 = INTA#) of slot S goes to GSI intx_gsi_base + (S + P) % 8,
  // IOAPIC pins 16-23, level-triggered, active low (ACPI defaults for _PRT GSIs).
  uint32_t intx_gsi_base = kBoard.pci_intx_gsi_base;
  static uint32_t intx_gsi(uint32_t base, uint32_t slot, uint32_t pin) {
    return base + (slot + pin) % 8;
  }
};

struct MachineLayout {
  uint32_t num_cpus = 1;  // vCPUs; APIC id and ACPI processor UID of vCPU i are both i

  // Guest RAM, reported usable in E820 (minus any overlapping reserved range).
  std::vector<MemRange> ram;
  // Everything else the guest must not use as RAM: ROM, the legacy hole 0xa0000-0xfffff (which
  // holds the ACPI and MP tables), device windows. E820 type 2. The LAPIC, IOAPIC and HPET
  // windows below are added automatically.
  std::vector<MemRange> reserved;

  IoApicInfo ioapic;
  uint64_t lapic_addr = kBoard.lapic_addr;  // MADT Local Interrupt Controller Address

  bool has_8259 = true;      // dual 8259 present: MADT flag PCAT_COMPAT, MP ExtINT entries
  bool legacy_free = false;  // `set legacy-free on`: FADT IAPC_BOOT_ARCH LEGACY_DEVICES clear
  bool has_pit = true;       // 8254 present: expect an IRQ0 -> GSI2 override in irq_overrides

  // ISA IRQ overrides for the MADT and MP table; standard_irq_overrides() gives the usual ones.
  std::vector<IsaIrqOverride> irq_overrides;

  // ACPI fixed hardware (ACPI 6.4 §4.8.1): PM1a event block (status + enable, 2 bytes each) and
  // PM1a control block (SLP_TYP bits 12:10, SLP_EN bit 13), both I/O ports. No PM timer, no GPE.
  uint16_t pm1a_evt_port = kBoard.pm_base;
  uint8_t pm1_evt_len = 4;
  uint16_t pm1a_cnt_port = kBoard.pm_base + 4;
  uint8_t pm1_cnt_len = 2;
  uint32_t sci_gsi =
      kBoard.sci_gsi;  // FADT SCI_INT; level-triggered, active high (override in MADT)

  // FADT RESET_REG (an I/O port GAS) and RESET_VALUE (ACPI 6.4 §4.8.3.6).
  uint16_t reset_port = kBoard.reset_port;
  uint8_t reset_value = 0x06;

  std::vector<IsaDevice> isa_devices;
  std::vector<VirtioMmioInfo> virtio_mmio;
  std::vector<CompatibleMmioInfo> compatible_mmio;
  std::optional<uint64_t> hpet_addr;
  std::optional<PciHostInfo> pci;  // adds MCFG and reserves the ECAM window  // HPET block (1 KiB);
                                   // adds the HPET table and a PNP0103
};

// IRQ0 -> GSI2 when a PIT is present (the 8254 is wired to IOAPIC pin 2, as on PC chipsets), and
// the SCI as level-triggered, active high.
inline std::vector<IsaIrqOverride> standard_irq_overrides(bool has_pit, uint32_t sci_gsi) {
  std::vector<IsaIrqOverride> v;
  if (has_pit) v.push_back({0, 2, kIntiConforms});
  if (sci_gsi < 16)
    v.push_back({static_cast<uint8_t>(sci_gsi), sci_gsi, kIntiActiveHigh | kIntiLevel});
  return v;
}

}  // namespace qvm::arch::x86
