// The BIOS E820 memory map (ACPI 6.4 §15, "System Address Map Interfaces") derived from a
// MachineLayout. Used for boot_params.e820_table (Linux) and hvm_start_info's memmap (PVH).
#pragma once

#include <cstdint>
#include <vector>

#include "arch/x86/layout.hpp"

namespace qvm::arch::x86 {

enum class E820Type : uint32_t { kRam = 1, kReserved = 2, kAcpi = 3, kNvs = 4, kUnusable = 5 };

struct E820Entry {
  uint64_t addr = 0;
  uint64_t size = 0;
  E820Type type = E820Type::kRam;
  bool operator==(const E820Entry&) const = default;
};

// RAM as usable; reserved ranges, the LAPIC page, the IOAPIC page and the HPET block as
// reserved. Reserved wins where it overlaps RAM. Sorted by address, non-overlapping, adjacent
// entries of one type merged, empty ranges dropped.
std::vector<E820Entry> e820(const MachineLayout& layout);

}  // namespace qvm::arch::x86
