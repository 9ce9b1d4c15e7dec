// Guest-virtual to guest-physical translation in software (Intel SDM vol. 3 §4: 32-bit paging
// with and without PSE, PAE, 4-level and 5-level paging), for the GDB stub's memory accesses and
// anything else that must follow the guest's page tables while its vCPU is stopped. Reads only
// guest memory through `read_pte`, so it is tested with fabricated tables.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>

namespace qvm::arch::x86 {

struct PagingRegs {
  uint64_t cr0 = 0, cr3 = 0, cr4 = 0, efer = 0;
};

// `read_pte(gpa, bytes)` reads a 4- or 8-byte little-endian entry; nullopt if it is not RAM.
using PteReader = std::function<std::optional<uint64_t>(uint64_t gpa, unsigned bytes)>;

// The physical address of `va`, or nullopt when a level is not present (or not readable).
// With paging off (CR0.PG clear) the address is physical already.
std::optional<uint64_t> translate(const PagingRegs& r, uint64_t va, const PteReader& read_pte);

}  // namespace qvm::arch::x86
