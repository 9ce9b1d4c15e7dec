// Software page walks (src/arch/x86/page_walk.*) over fabricated tables: every paging mode of
// SDM vol. 3 §4, large pages, and not-present entries.
#include "arch/x86/page_walk.hpp"

#include <gtest/gtest.h>

#include <map>

namespace qvm::arch::x86 {
namespace {

struct Tables {
  std::map<uint64_t, uint64_t> e;  // entry address -> value
  PteReader reader() {
    return [this](uint64_t gpa, unsigned bytes) -> std::optional<uint64_t> {
      auto it = e.find(gpa);
      if (it == e.end()) return uint64_t{0};  // not present
      return bytes == 4 ? (it->second & 0xffffffffu) : it->second;
    };
  }
};

constexpr uint64_t kP = 1, kPs = 0x80, kRw = 2;
constexpr uint64_t kPg = 1ull << 31, kPse = 1 << 4, kPae = 1 << 5, kLa57 = 1 << 12, kLma = 1 << 10;

TEST(PageWalk, PagingOffIsIdentity) {
  Tables t;
  EXPECT_EQ(translate({0, 0, 0, 0}, 0x12345678, t.reader()), 0x12345678u);
}

TEST(PageWalk, FourLevelWith4KiB2MiBAnd1GiBPages) {
  Tables t;
  const uint64_t va = 0xffff800012345678ull;  // PML4 256, PDPT 0, PD 0x91, PT 0x145
  t.e[0x1000 + 256 * 8] = 0x2000 | kP | kRw;
  t.e[0x2000 + 0 * 8] = 0x3000 | kP;
  t.e[0x3000 + 0x91 * 8] = 0x4000 | kP;
  t.e[0x4000 + 0x145 * 8] = 0xabcde000 | kP | (1ull << 63);  // NX bit is not address
  PagingRegs r{kPg | 1, 0x1000, kPae, kLma};
  EXPECT_EQ(translate(r, va, t.reader()), 0xabcde678u);
  // 2 MiB page at the PD level.
  t.e[0x3000 + 0x91 * 8] = 0x40000000 | kP | kPs;
  EXPECT_EQ(translate(r, va, t.reader()), 0x40000000u + (va & 0x1fffff));
  // 1 GiB page at the PDPT level.
  t.e[0x2000] = 0x80000000 | kP | kPs;
  EXPECT_EQ(translate(r, va, t.reader()), 0x80000000u + (va & 0x3fffffff));
  // Not present.
  t.e[0x1000 + 256 * 8] = 0x2000;
  EXPECT_FALSE(translate(r, va, t.reader()));
}

TEST(PageWalk, FiveLevel) {
  Tables t;
  const uint64_t va = 0x0100000000001234ull;  // PML5 index 2 (bits 56:48 = 0x100 >> ... )
  const uint64_t i5 = (va >> 48) & 511, i4 = (va >> 39) & 511, i3 = (va >> 30) & 511,
                 i2 = (va >> 21) & 511, i1 = (va >> 12) & 511;
  t.e[0x1000 + i5 * 8] = 0x2000 | kP;
  t.e[0x2000 + i4 * 8] = 0x3000 | kP;
  t.e[0x3000 + i3 * 8] = 0x4000 | kP;
  t.e[0x4000 + i2 * 8] = 0x5000 | kP;
  t.e[0x5000 + i1 * 8] = 0x777000 | kP;
  EXPECT_EQ(translate({kPg | 1, 0x1000, kPae | kLa57, kLma}, va, t.reader()), 0x777234u);
  // Without LA57 the same CR3 is a 4-level table: a different walk that finds nothing.
  EXPECT_NE(translate({kPg | 1, 0x1000, kPae, kLma}, va, t.reader()),
            std::optional<uint64_t>(0x777234u));
}

TEST(PageWalk, PaeWithItsFourPdptes) {
  Tables t;
  const uint64_t va = 0xc0201234;     // PDPTE 3, PD 1, PT 1
  t.e[0x1020 + 3 * 8] = 0x2000 | kP;  // CR3 is 32-byte aligned
  t.e[0x2000 + 1 * 8] = 0x3000 | kP;
  t.e[0x3000 + 1 * 8] = 0x12345000 | kP;
  PagingRegs r{kPg | 1, 0x1020, kPae, 0};
  EXPECT_EQ(translate(r, va, t.reader()), 0x12345234u);
  t.e[0x2000 + 1 * 8] = 0x200000 | kP | kPs;
  EXPECT_EQ(translate(r, va, t.reader()), 0x200000u + (va & 0x1fffff));
}

TEST(PageWalk, ThirtyTwoBitWithAndWithoutPse) {
  Tables t;
  const uint64_t va = 0x80401234;  // PDE 0x201, PTE 1
  t.e[0x1000 + 0x201 * 4] = 0x2000 | kP;
  t.e[0x2000 + 1 * 4] = 0x00abc000 | kP;
  PagingRegs r{kPg | 1, 0x1000, 0, 0};
  EXPECT_EQ(translate(r, va, t.reader()), 0x00abc234u);
  // A 4 MiB page needs CR4.PSE; PSE-36 bits 13-20 give address bits 32-39.
  t.e[0x1000 + 0x201 * 4] = 0x00c00000 | kP | kPs | (0x5u << 13);
  r.cr4 = kPse;
  EXPECT_EQ(translate(r, va, t.reader()), 0x500c00000u + (va & 0x3fffff));
  // Upper bits of a 64-bit address are ignored in 32-bit paging.
  EXPECT_EQ(translate(r, va | 0xffffffff00000000ull, t.reader()), 0x500c00000u + (va & 0x3fffff));
}

}  // namespace
}  // namespace qvm::arch::x86
