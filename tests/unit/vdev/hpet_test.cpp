// The HPET model (vdev/hpet/hpet.hpp, IA-PC HPET 1.0a) with a fake clock, fake host timers and
// recorded interrupt lines.
#include "vdev/hpet/hpet.hpp"

#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <vector>

#include "bus/bus.hpp"

namespace qvm::vdev {
namespace {

struct HpetTest : ::testing::Test {
  uint64_t now = 1'000'000'000;
  std::map<unsigned, std::optional<uint64_t>> armed;
  std::vector<std::pair<uint32_t, bool>> irqs;
  std::vector<bool> legacy;  // what the PIT was told
  Hpet h{10'000'000 /* 10 MHz: 100 ns ticks */, (1u << 20) | (1u << 23), true,
         Hpet::Hooks{[this] { return now; },
                     [this](unsigned n, std::optional<uint64_t> at) { armed[n] = at; },
                     [this](uint32_t g, bool l) { irqs.emplace_back(g, l); },
                     [this](bool on) { legacy.push_back(on); }}};

  uint64_t rd(uint64_t off) {
    uint8_t b[8];
    h.read(off, b);
    return bus::load_le(b);
  }
  void wr(uint64_t off, uint64_t v) {
    uint8_t b[8];
    bus::store_le(b, v);
    h.write(off, b);
  }
  void wr32(uint64_t off, uint32_t v) {
    uint8_t b[4];
    bus::store_le(b, v);
    h.write(off, b);
  }
  // Advance the clock to timer n's armed time and let it expire.
  void run_timer(unsigned n) {
    ASSERT_TRUE(armed[n].has_value());
    now = *armed[n];
    h.expire(n);
  }
};

TEST_F(HpetTest, CapabilitiesAndCounter) {
  const uint64_t cap = rd(0);
  EXPECT_EQ(cap >> 32, 100'000'000u);  // period in fs
  EXPECT_EQ(cap & 0xffffffff, Hpet::kCapLow);
  EXPECT_EQ(((cap >> 8) & 0x1f) + 1, 3u);
  EXPECT_EQ(rd(0x100) >> 32, (1u << 20) | (1u << 23));  // route capability
  wr(0xf0, 500);                                        // halted: writable
  EXPECT_EQ(rd(0xf0), 500u);
  now += 1'000'000;
  EXPECT_EQ(rd(0xf0), 500u);  // halted: stands still
  wr(0x10, 1);
  now += 1'000'000;  // 1 ms = 10,000 ticks
  EXPECT_EQ(rd(0xf0), 10'500u);
  wr(0xf0, 0);  // ignored while running
  EXPECT_EQ(rd(0xf0), 10'500u);
  uint8_t odd[2];
  h.read(0xf0, odd);  // 2-byte access: not allowed
  EXPECT_EQ(bus::load_le(odd), 0u);
}

TEST_F(HpetTest, OneShotEdgeOnItsRoute) {
  wr(0x10, 1);
  wr(0x100 + 0x20 * 2, (23u << 9) | (1u << 2));  // timer 2 -> input 23, edge, enabled
  wr(0x108 + 0x20 * 2, rd(0xf0) + 100);          // 100 ticks = 10 us
  ASSERT_TRUE(armed[2].has_value());
  EXPECT_NEAR(static_cast<double>(*armed[2] - now), 10'000, 2);
  run_timer(2);
  ASSERT_EQ(irqs.size(), 2u);
  EXPECT_EQ(irqs[0], std::make_pair(23u, true));
  EXPECT_EQ(irqs[1], std::make_pair(23u, false));
  EXPECT_FALSE(armed[2].has_value());  // one-shot: done
  // A route outside the capability is not taken (stays 23).
  wr(0x100 + 0x20 * 2, (5u << 9) | (1u << 2));
  EXPECT_EQ((rd(0x100 + 0x20 * 2) >> 9) & 0x1f, 23u);
}

TEST_F(HpetTest, EarlyHostTimerIsReArmed) {
  wr(0x10, 1);
  wr(0x100, (20u << 9) | (1u << 2));
  wr(0x108, rd(0xf0) + 1000);
  now += 50'000;  // fired early (half the time)
  h.expire(0);
  EXPECT_TRUE(irqs.empty());
  ASSERT_TRUE(armed[0].has_value());
  run_timer(0);
  EXPECT_EQ(irqs.size(), 2u);
}

TEST_F(HpetTest, PeriodicWithValSetAndCatchUp) {
  wr(0x10, 1);
  wr(0x100, (20u << 9) | (1u << 2) | (1u << 3) | (1u << 6));  // periodic, VAL_SET
  wr(0x108, rd(0xf0) + 10'000);                               // first match in 1 ms
  wr(0x108, 10'000);                                          // the period: 1 ms
  for (int i = 0; i < 3; ++i) run_timer(0);
  EXPECT_EQ(irqs.size(), 6u);  // three edges
  // The guest was away for 10 periods: one interrupt, then the next match is ahead of now.
  now += 10'000'000;
  h.expire(0);
  EXPECT_EQ(irqs.size(), 8u);
  ASSERT_TRUE(armed[0].has_value());
  EXPECT_GT(*armed[0], now);
  EXPECT_LE(*armed[0] - now, 1'000'001u);
}

TEST_F(HpetTest, AComparatorBehindTheCounterIsDueNow) {
  // Linux writes only the low half of a 64-bit comparator: the high half stays all ones.
  wr(0x10, 1);
  wr(0x100, (20u << 9) | (1u << 2) | (1u << 3) | (1u << 6));
  wr32(0x108, static_cast<uint32_t>(rd(0xf0) + 1000));
  wr32(0x108, 1000);
  ASSERT_TRUE(armed[0].has_value());
  EXPECT_LE(*armed[0] - now, 1u);
  run_timer(0);
  EXPECT_EQ(irqs.size(), 2u);
  ASSERT_TRUE(armed[0].has_value());  // and then periodic from there
  EXPECT_GT(*armed[0], now);
}

TEST_F(HpetTest, ATinyPeriodIsRateLimitedOnTheHost) {
  wr(0x10, 1);
  wr(0x100, (20u << 9) | (1u << 2) | (1u << 3) | (1u << 6));
  wr(0x108, rd(0xf0) + 1);
  wr(0x108, 1);  // a 100 ns period
  run_timer(0);
  ASSERT_TRUE(armed[0].has_value());
  EXPECT_GE(*armed[0] - now, Hpet::kMinHostPeriodNs);
}

TEST_F(HpetTest, LevelInterruptHoldsUntilTheStatusBitIsCleared) {
  wr(0x10, 1);
  wr(0x100 + 0x20, (23u << 9) | (1u << 2) | (1u << 1));  // timer 1, level
  wr(0x108 + 0x20, rd(0xf0) + 10);
  run_timer(1);
  ASSERT_EQ(irqs.size(), 1u);
  EXPECT_EQ(irqs[0], std::make_pair(23u, true));
  EXPECT_EQ(rd(0x20), 2u);  // status bit 1
  wr(0x20, 1);              // another bit: nothing
  EXPECT_EQ(irqs.size(), 1u);
  wr(0x20, 2);
  ASSERT_EQ(irqs.size(), 2u);
  EXPECT_EQ(irqs[1], std::make_pair(23u, false));
  EXPECT_EQ(rd(0x20), 0u);
}

TEST_F(HpetTest, LegacyReplacementRoutesTimers0And1ToIrq0And8) {
  wr(0x10, 3);
  wr(0x100, (1u << 2));
  wr(0x108, rd(0xf0) + 10);
  wr(0x120, (1u << 2));
  wr(0x128, rd(0xf0) + 20);
  run_timer(0);
  run_timer(1);
  ASSERT_EQ(irqs.size(), 4u);
  EXPECT_EQ(irqs[0].first, 2u);  // IRQ0 arrives at GSI 2 (the MADT override)
  EXPECT_EQ(irqs[2].first, 8u);
  EXPECT_EQ(legacy, (std::vector<bool>{true}));  // the PIT gives IRQ0 up
  wr(0x10, 1);
  EXPECT_EQ(legacy, (std::vector<bool>{true, false}));
}

TEST_F(HpetTest, LegacyReplacementFollowsTheMachinesIrq0) {
  h.set_legacy_gsis(0, 8);  // the PIT on IOAPIC pin 0: no IRQ0 override in the MADT
  wr(0x10, 3);
  wr(0x100, (1u << 2));
  wr(0x108, rd(0xf0) + 10);
  run_timer(0);
  ASSERT_EQ(irqs.size(), 2u);
  EXPECT_EQ(irqs[0].first, 0u);
}

TEST_F(HpetTest, ThirtyTwoBitModeWraps) {
  wr(0xf0, 0xfffffff0ull);
  wr(0x10, 1);
  wr(0x100, (20u << 9) | (1u << 2) | (1u << 8));  // 32-bit mode
  wr32(0x108, 0x10);                              // 0x20 ticks ahead, across the 32-bit wrap
  ASSERT_TRUE(armed[0].has_value());
  EXPECT_NEAR(static_cast<double>(*armed[0] - now), 0x20 * 100, 2);
  EXPECT_EQ(rd(0x108), 0x10u);
}

}  // namespace
}  // namespace qvm::vdev
