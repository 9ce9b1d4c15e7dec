// Intel MultiProcessor Specification 1.4 tables (MP floating pointer + MP configuration table)
// for guests that do not read ACPI (older kernels, QNX startup code that scans for "_MP_").
#pragma once

#include <cstdint>
#include <vector>

#include "arch/x86/layout.hpp"
#include "base/result.hpp"
#include "memory/guest_memory.hpp"

namespace qvm::arch::x86 {

// The MP floating pointer structure (16 bytes, MP spec §4.1) followed by the configuration table
// (§4.2): a processor entry per vCPU (vCPU 0 is the BSP), bus 0 "ISA", the IOAPIC, an I/O
// interrupt entry per ISA IRQ (identity unless overridden; ExtINT on pin 0 with an 8259), and local
// interrupt entries ExtINT -> LINT0, NMI -> LINT1. Pure; the bytes start at `addr`.
Result<std::vector<uint8_t>> mptable_bytes(const MachineLayout& layout, uint64_t addr);

// Writes mptable_bytes() at `addr` (16-byte aligned; within 0xf0000-0xfffff, the last KiB of base
// memory or the EBDA so that guests find it, MP spec §4). Returns the first address after it.
Result<uint64_t> build_mptable(const MachineLayout& layout, memory::GuestMemory& mem,
                               uint64_t addr);

}  // namespace qvm::arch::x86
