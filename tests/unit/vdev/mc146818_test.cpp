#include "vdev/rtc/mc146818.hpp"

#include <gtest/gtest.h>

namespace qvm::vdev {
namespace {

struct RtcTest : ::testing::Test {
  FakeClock clock;
  RecordingIrqLine irq;
  Mc146818 rtc{clock, irq};
  uint8_t reg(uint8_t r) {
    rtc.write(0, r);
    return rtc.read(1);
  }
  void set(uint8_t r, uint8_t v) {
    rtc.write(0, r);
    rtc.write(1, v);
  }
  void SetUp() override { clock.wall = 1700000000; /* 2023-11-14 22:13:20 UTC, a Tuesday */ }
};

TEST_F(RtcTest, TimeInBcd24h) {
  EXPECT_EQ(reg(0x00), 0x20);
  EXPECT_EQ(reg(0x02), 0x13);
  EXPECT_EQ(reg(0x04), 0x22);
  EXPECT_EQ(reg(0x07), 0x14);
  EXPECT_EQ(reg(0x08), 0x11);
  EXPECT_EQ(reg(0x09), 0x23);
  EXPECT_EQ(reg(0x32), 0x20);
  EXPECT_EQ(reg(0x06), 0x03);  // Tuesday = 3 (Sunday = 1)
  EXPECT_EQ(reg(0x0d), 0x80);
}

TEST_F(RtcTest, BinaryAnd12HourModes) {
  set(0x0b, 0x04);  // binary, 12-hour
  EXPECT_EQ(reg(0x00), 20);
  EXPECT_EQ(reg(0x04), 0x80 | 10);  // 22h = 10 PM
}

TEST_F(RtcTest, GuestSetsTheClock) {
  set(0x0b, 0x82);  // SET
  set(0x04, 0x01);  // 01:xx
  set(0x0b, 0x02);
  EXPECT_EQ(reg(0x04), 0x01);
  clock.wall += 3600;
  EXPECT_EQ(reg(0x04), 0x02);
}

TEST_F(RtcTest, PeriodicInterruptAndRegisterC) {
  EXPECT_FALSE(rtc.periodic_period());
  int reprogrammed = 0;
  rtc.on_timer_config = [&] { ++reprogrammed; };
  set(0x0a, 0x26);  // 1024 Hz
  set(0x0b, 0x42);  // PIE
  EXPECT_EQ(reprogrammed, 2);
  ASSERT_TRUE(rtc.periodic_period());
  EXPECT_EQ(rtc.periodic_period()->count(), 976562);
  rtc.periodic_tick();
  EXPECT_TRUE(irq.level);
  EXPECT_EQ(reg(0x0c), 0xc0);  // IRQF | PF, cleared by the read
  EXPECT_FALSE(irq.level);
  EXPECT_EQ(reg(0x0c), 0x00);
}

TEST_F(RtcTest, FlagsWithoutEnableRaiseNoIrq) {
  rtc.second_tick();
  EXPECT_FALSE(irq.level);
  EXPECT_EQ(reg(0x0c), 0x10);  // UF only
}

// Datasheet "Time, Calendar and Alarm Locations": the time bytes are writable while the clock
// runs; SET (register B) only holds off the update cycle.
TEST_F(RtcTest, TimeWrittenWithoutSetTakesEffect) {
  set(0x02, 0x45);  // 22:45:20
  EXPECT_EQ(reg(0x02), 0x45);
  EXPECT_EQ(reg(0x00), 0x20);
  EXPECT_EQ(reg(0x04), 0x22);
  set(0x07, 0x01);  // 2023-11-01
  EXPECT_EQ(reg(0x07), 0x01);
  EXPECT_EQ(reg(0x08), 0x11);
  EXPECT_EQ(reg(0x09), 0x23);
  EXPECT_EQ(reg(0x32), 0x20);
  EXPECT_EQ(reg(0x06), 0x04);  // 2023-11-01 was a Wednesday
  clock.wall += 60;
  EXPECT_EQ(reg(0x02), 0x46);  // and the clock runs on from there
  EXPECT_EQ(reg(0x07), 0x01);
}

// Alarm bytes are not time counters: SET does not freeze them.
TEST_F(RtcTest, AlarmReadsBackWhileSet) {
  set(0x03, 0x10);
  set(0x0b, 0x82);  // SET
  EXPECT_EQ(reg(0x03), 0x10);
  set(0x01, 0x30);
  set(0x03, 0x15);
  set(0x05, 0xc0);
  EXPECT_EQ(reg(0x01), 0x30);
  EXPECT_EQ(reg(0x03), 0x15);
  EXPECT_EQ(reg(0x05), 0xc0);
  set(0x0b, 0x02);
  EXPECT_EQ(reg(0x03), 0x15);
}

// Datasheet "Interrupts": a flag already set when its interrupt becomes enabled asserts IRQ at
// once (register C: IRQF = PF*PIE + AF*AIE + UF*UIE).
TEST_F(RtcTest, EnablingWithFlagPendingRaisesIrq) {
  rtc.periodic_tick();
  rtc.second_tick();
  EXPECT_FALSE(irq.level);
  set(0x0b, 0x12);  // UIE
  EXPECT_TRUE(irq.level);
  EXPECT_EQ(reg(0x0c), 0xd0);  // IRQF | PF | UF
  EXPECT_FALSE(irq.level);
  rtc.periodic_tick();
  set(0x0b, 0x32);  // AIE | UIE: no AF or UF pending
  EXPECT_FALSE(irq.level);
  set(0x0b, 0x72);  // PIE too
  EXPECT_TRUE(irq.level);
  EXPECT_EQ(reg(0x0c), 0xc0);
}

// The same equation: clearing the enable bit of the only pending flag drops IRQF and the line.
TEST_F(RtcTest, DisablingLowersIrq) {
  set(0x0b, 0x52);  // PIE | UIE
  rtc.periodic_tick();
  rtc.second_tick();
  EXPECT_TRUE(irq.level);
  set(0x0b, 0x42);  // PF still enabled
  EXPECT_TRUE(irq.level);
  set(0x0b, 0x02);
  EXPECT_FALSE(irq.level);
  EXPECT_EQ(reg(0x0c), 0x50);  // PF | UF, no IRQF
  EXPECT_FALSE(irq.level);
}

TEST_F(RtcTest, MemorySizeFields) {
  rtc.set_memory_sizes(128ull << 20, 1ull << 30, 2);
  EXPECT_EQ(reg(0x15) | (reg(0x16) << 8), 640);
  EXPECT_EQ(reg(0x17) | (reg(0x18) << 8), 0xfc00);  // capped at 63 MiB as on the PC/AT
  EXPECT_EQ(reg(0x34) | (reg(0x35) << 8), (112 << 20) >> 16);
  EXPECT_EQ(reg(0x5b) | (reg(0x5c) << 8) | (reg(0x5d) << 16), (1 << 30) >> 16);
  EXPECT_EQ(reg(0x5f), 1);
}

TEST_F(RtcTest, IndexIsSevenBitsAndPortZeroReadsOnes) {
  set(0xff, 0x12);  // NMI bit ignored: index 0x7f
  EXPECT_EQ(reg(0x7f), 0x12);
  EXPECT_EQ(rtc.read(0), 0xff);
}

}  // namespace
}  // namespace qvm::vdev
