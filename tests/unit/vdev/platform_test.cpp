#include <gtest/gtest.h>

#include "vdev/platform/acpi_pm.hpp"
#include "vdev/platform/i8042.hpp"

namespace qvm::vdev {
namespace {

TEST(I8042, ResetCommand) {
  int resets = 0;
  I8042 k([&] { ++resets; });
  EXPECT_EQ(k.read(4) & 0x01, 0);
  k.write(4, 0xaa);
  EXPECT_EQ(k.read(4) & 0x01, 1);
  EXPECT_EQ(k.read(0), 0x55);
  k.write(4, 0xfe);
  EXPECT_EQ(resets, 1);
  k.write(4, 0xd1);
  k.write(0, 0xfe);  // output port bit 0 low
  EXPECT_EQ(resets, 2);
  k.write(4, 0x60);
  k.write(0, 0x47);
  k.write(4, 0x20);
  EXPECT_EQ(k.read(0), 0x47);
}

TEST(TestDev, ExitCodeIs32PlusValueClamped) {
  int code = -1;
  TestDev t([&](int c) { code = c; });
  t.write(0, 0);
  EXPECT_EQ(code, 32);
  t.write(0, 200);
  EXPECT_EQ(code, 63);
  code = -1;
  t.write(1, 5);  // upper bytes of a 32-bit write: ignored
  EXPECT_EQ(code, -1);
}

TEST(ResetControl, Bit2Resets) {
  int resets = 0;
  ResetControl r([&] { ++resets; });
  r.write(0, 0x02);
  EXPECT_EQ(resets, 0);
  r.write(0, 0x06);
  EXPECT_EQ(resets, 1);
}

TEST(AcpiPm, S5PowersOff) {
  RecordingIrqLine sci;
  int off = 0;
  AcpiPm pm(sci, [&] { ++off; });
  uint16_t v = (AcpiPm::kS5SlpTyp << 10) | (1u << 13);
  pm.write(4, static_cast<uint8_t>(v));
  pm.write(5, static_cast<uint8_t>(v >> 8));
  EXPECT_EQ(off, 1);
  uint16_t s3 = (3u << 10) | (1u << 13);  // another sleep type: ignored
  pm.write(4, static_cast<uint8_t>(s3));
  pm.write(5, static_cast<uint8_t>(s3 >> 8));
  EXPECT_EQ(off, 1);
}

TEST(AcpiPm, PowerButtonRaisesSciUntilCleared) {
  RecordingIrqLine sci;
  AcpiPm pm(sci, [] {});
  pm.press_power_button();
  EXPECT_FALSE(sci.level);  // not enabled yet: status only
  EXPECT_EQ(pm.read(1) & 0x01, 0x01);
  pm.write(2, 0x00);
  pm.write(3, 0x01);  // PWRBTN_EN
  EXPECT_TRUE(sci.level);
  pm.write(0, 0x00);
  pm.write(1, 0x01);  // write 1 to clear PWRBTN_STS
  EXPECT_FALSE(sci.level);
  EXPECT_TRUE(pm.sci_enabled());
}

}  // namespace
}  // namespace qvm::vdev
