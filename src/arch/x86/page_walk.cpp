#include "arch/x86/page_walk.hpp"

namespace qvm::arch::x86 {
namespace {

constexpr uint64_t kCr0Pg = 1ull << 31;
constexpr uint64_t kCr4Pse = 1ull << 4, kCr4Pae = 1ull << 5, kCr4La57 = 1ull << 12;
constexpr uint64_t kEferLma = 1ull << 10;
constexpr uint64_t kPresent = 1, kPageSize = 1ull << 7;
constexpr uint64_t kAddr52 = 0x000ffffffffff000ull;  // bits 51:12 of an 8-byte entry

// The 8-byte-entry walk shared by PAE (from the page directory) and 4/5-level paging: `levels`
// tables below `table`, 9 index bits each; a PS bit ends the walk early at 1 GiB / 2 MiB.
std::optional<uint64_t> walk64(uint64_t table, uint64_t va, int levels, const PteReader& rd) {
  for (int level = levels; level >= 1; --level) {
    const unsigned shift = 12 + 9 * static_cast<unsigned>(level - 1);
    const uint64_t idx = (va >> shift) & 511;
    auto e = rd(table + idx * 8, 8);
    if (!e || !(*e & kPresent)) return std::nullopt;
    if (level == 1 || ((level == 2 || level == 3) && (*e & kPageSize))) {
      const uint64_t page_mask = (1ull << shift) - 1;
      return (*e & kAddr52 & ~page_mask) | (va & page_mask);
    }
    table = *e & kAddr52;
  }
  return std::nullopt;
}

}  // namespace

std::optional<uint64_t> translate(const PagingRegs& r, uint64_t va, const PteReader& rd) {
  if (!(r.cr0 & kCr0Pg)) return va;
  if (r.efer & kEferLma) {
    const int levels = (r.cr4 & kCr4La57) ? 5 : 4;
    return walk64(r.cr3 & kAddr52, va, levels, rd);
  }
  va &= 0xffffffffull;
  if (r.cr4 & kCr4Pae) {
    // Four PDPTEs at CR3[31:5]; bits 31:30 of the address pick one (SDM §4.4.1).
    auto pdpte = rd((r.cr3 & 0xffffffe0ull) + ((va >> 30) & 3) * 8, 8);
    if (!pdpte || !(*pdpte & kPresent)) return std::nullopt;
    return walk64(*pdpte & kAddr52, va, 2, rd);
  }
  // 32-bit paging (SDM §4.3): 4-byte entries, 4 MiB pages with CR4.PSE (PSE-36 high bits).
  auto pde = rd((r.cr3 & 0xfffff000ull) + ((va >> 22) & 1023) * 4, 4);
  if (!pde || !(*pde & kPresent)) return std::nullopt;
  if ((r.cr4 & kCr4Pse) && (*pde & kPageSize)) {
    const uint64_t base = (*pde & 0xffc00000ull) | ((*pde >> 13) & 0xffull) << 32;
    return base | (va & 0x3fffff);
  }
  auto pte = rd((*pde & 0xfffff000ull) + ((va >> 12) & 1023) * 4, 4);
  if (!pte || !(*pte & kPresent)) return std::nullopt;
  return (*pte & 0xfffff000ull) | (va & 0xfff);
}

}  // namespace qvm::arch::x86
