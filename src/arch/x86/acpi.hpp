// ACPI tables for an x86 machine (ACPI 6.4): RSDP, XSDT and RSDT, FADT (full, not hardware
// reduced), FACS, MADT, DSDT and an optional HPET table, plus extra tables from `acpi load`.
// build_acpi() writes them into guest memory below `limit`; the tables' bytes are returned too so
// the app can write them to `set acpi-dump-dir` as <SIG>.dat. The table builders are pure.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "arch/x86/layout.hpp"
#include "base/result.hpp"
#include "memory/guest_memory.hpp"

namespace qvm::arch::x86 {

// SLP_TYP for S5 (soft off) in the DSDT's \_S5_ package: a guest powers off by writing
// (kSlpTypS5 << 10) | (1 << 13) (SLP_EN) to PM1a_CNT (ACPI 6.4 §4.8.3.2.1, §7.4.2).
inline constexpr uint8_t kSlpTypS5 = 5;
inline constexpr uint16_t kPm1CntSlpEn = 1u << 13;
inline constexpr uint16_t kPm1CntSlpTypShift = 10;
// PM1 status/enable bits the power-button event uses (ACPI 6.4 §4.8.3.1).
inline constexpr uint16_t kPm1PwrBtnSts = 1u << 8;
inline constexpr uint16_t kPm1PwrBtnEn = 1u << 8;
// HPET event timer block id reported in the HPET table: vendor 0x8086, legacy-replacement
// capable, 64-bit counter, 3 comparators, revision 1. The HPET vdev's GCAP_ID must match.
inline constexpr uint32_t kHpetBlockId = 0x8086a201;

struct AcpiTable {
  std::string signature;  // the 4-character table signature ("RSDP" for the root pointer)
  uint64_t addr = 0;
  std::vector<uint8_t> bytes;
};

struct AcpiResult {
  uint64_t rsdp_addr = 0;
  uint64_t end = 0;               // first byte after the last table
  AcpiTable rsdp;                 // kept apart: iasl cannot disassemble a binary RSDP
  std::vector<AcpiTable> tables;  // FACS, DSDT, FACP, APIC, [HPET], extras, XSDT, RSDT
};

// Writes all tables into [base, limit) of guest memory: RSDP at `base` (16-byte aligned; put it in
// the 0xe0000-0xfffff BIOS area so guests that scan find it), then FACS, DSDT, FADT, MADT, HPET,
// the extra tables (each a complete table with a valid checksum and length), XSDT, RSDT.
// Everything must lie below 4 GiB. Fails if the layout is inconsistent or the tables do not fit.
Result<AcpiResult> build_acpi(const MachineLayout& layout,
                              std::span<const std::vector<uint8_t>> extra, memory::GuestMemory& mem,
                              uint64_t base, uint64_t limit);

// Pure builders (tests, and a future non-x86 user of the DSDT encoder).
uint8_t acpi_checksum(std::span<const uint8_t> bytes);  // value making the byte sum zero
Result<std::vector<uint8_t>> build_dsdt(const MachineLayout& layout);
std::vector<uint8_t> build_madt(const MachineLayout& layout);
std::vector<uint8_t> build_fadt(const MachineLayout& layout, uint64_t facs, uint64_t dsdt);
std::vector<uint8_t> build_hpet(uint64_t hpet_addr);
std::vector<uint8_t> build_mcfg(const PciHostInfo& pci);

}  // namespace qvm::arch::x86
