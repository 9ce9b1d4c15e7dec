// The x86 board qvm builds: where its chipset pieces live in the guest-physical and port address
// spaces. One description that the machine's allocators (PCI BARs, slots' INTx GSIs), the fixed
// platform devices and the firmware-table builders (ACPI, MP table, E820, FDT) all read, so the
// tables describe exactly what was allocated. The addresses are those of PC chipsets and of the
// QNX qvm's x86 guests (spec §6.2: IOAPIC at 0xfec00000, LAPIC at 0xfee00000).
#pragma once

#include <cstdint>

namespace qvm::arch::x86 {

struct Board {
  // PCI host bridge: ECAM for bus 0 (PCIe 4.0 §7.2.2; MCFG), below the 32-bit BAR window.
  uint64_t ecam_base = 0xb0000000;
  uint64_t ecam_size = 1u << 20;  // one bus
  // Windows qvm assigns BARs from (and the DSDT's PCI0 _CRS decodes): memory up to the IOAPIC
  // page, ports as SeaBIOS and QEMU use them.
  uint64_t pci_mmio_base = 0xc0000000;
  uint64_t pci_mmio_end = 0xfec00000;  // exclusive: the IOAPIC and LAPIC pages follow
  uint64_t pci_io_base = 0xc000;
  uint64_t pci_io_end = 0x10000;  // exclusive
  // INTx: pin P of slot S is IOAPIC pin pci_intx_gsi_base + (S + P) % 8 (PCI0 _PRT), level.
  uint32_t pci_intx_gsi_base = 16;
  // Interrupt controllers (in-kernel): one 24-pin IOAPIC, GSIs 0-23; the LAPICs.
  uint64_t ioapic_addr = 0xfec00000;
  uint32_t ioapic_pins = 24;
  uint64_t lapic_addr = 0xfee00000;
  // ACPI fixed hardware: PM1a event block (4 bytes) then PM1a control block (2 bytes); the SCI.
  uint16_t pm_base = 0x600;
  uint32_t sci_gsi = 9;
  uint16_t reset_port = 0xcf9;  // FADT RESET_REG, in the 0xcf8 configuration-mechanism block
  // Firmware tables in the legacy BIOS area (guests scan 0xe0000-0xfffff for the RSDP and the MP
  // floating pointer): ACPI below, the MP table in the last 64 KiB.
  uint64_t acpi_base = 0xe0000;
  uint64_t acpi_limit = 0xf0000;
  uint64_t mptable_addr = 0xf0000;
};

inline constexpr Board kBoard{};

}  // namespace qvm::arch::x86
