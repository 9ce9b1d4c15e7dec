#include "arch/x86/e820.hpp"

#include <gtest/gtest.h>

#include "test_util.hpp"

namespace qvm::arch::x86 {
namespace {

TEST(E820, SortedNonOverlappingReservedWins) {
  MachineLayout l = testing::small_layout();
  l.ram.push_back({1ull << 32, 1ull << 30});  // high RAM, given out of order
  auto m = e820(l);
  const std::vector<E820Entry> want{
      {0, 0x9fc00, E820Type::kRam},
      {0x9fc00, 0x100000 - 0x9fc00, E820Type::kReserved},  // EBDA + legacy hole merged
      {0x100000, testing::kRamSize - 0x100000, E820Type::kRam},
      {0xfec00000, 0x1000, E820Type::kReserved},  // IOAPIC
      {0xfed00000, 0x1000, E820Type::kReserved},  // HPET
      {0xfee00000, 0x1000, E820Type::kReserved},  // LAPIC
      {1ull << 32, 1ull << 30, E820Type::kRam},
  };
  EXPECT_EQ(m, want);
  for (size_t i = 1; i < m.size(); i++) EXPECT_LE(m[i - 1].addr + m[i - 1].size, m[i].addr);
}

TEST(E820, ReservedCutsMiddleAndEdgesOfRam) {
  MachineLayout l;
  l.ram = {{0, 0x10000}, {0x8000, 0x10000}};  // overlapping RAM ranges merge
  l.reserved = {{0x0, 0x1000}, {0x4000, 0x1000}, {0x17000, 0x2000}};
  auto m = e820(l);
  ASSERT_GE(m.size(), 5u);
  EXPECT_EQ(m[0], (E820Entry{0, 0x1000, E820Type::kReserved}));
  EXPECT_EQ(m[1], (E820Entry{0x1000, 0x3000, E820Type::kRam}));
  EXPECT_EQ(m[2], (E820Entry{0x4000, 0x1000, E820Type::kReserved}));
  EXPECT_EQ(m[3], (E820Entry{0x5000, 0x12000, E820Type::kRam}));
  EXPECT_EQ(m[4], (E820Entry{0x17000, 0x2000, E820Type::kReserved}));
}

}  // namespace
}  // namespace qvm::arch::x86
