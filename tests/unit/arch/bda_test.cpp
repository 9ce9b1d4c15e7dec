#include "arch/x86/bda.hpp"

#include <gtest/gtest.h>

#include "test_util.hpp"

namespace qvm::arch::x86 {
namespace {

uint16_t u16(const std::vector<uint8_t>& b, size_t off) {
  return static_cast<uint16_t>(b[off] | (b[off + 1] << 8));
}

TEST(Bda, SerialPortsEquipmentAndBaseMemory) {
  MachineLayout l = testing::small_layout();  // COM1, RTC, i8042; RAM 0-32 MiB
  l.isa_devices.push_back({"PNP0501", 0x2f8, 8, 3});
  auto b = bda_bytes(l);
  ASSERT_EQ(b.size(), kBdaSize);
  EXPECT_EQ(u16(b, 0x00), 0x3f8);
  EXPECT_EQ(u16(b, 0x02), 0x2f8);
  EXPECT_EQ(u16(b, 0x04), 0);
  EXPECT_EQ(u16(b, 0x0e), 0);             // no EBDA
  EXPECT_EQ(u16(b, 0x10), 0x2 | 2 << 9);  // FPU, two serial ports
  EXPECT_EQ(u16(b, 0x13), 640);           // capped at 640 KiB
}

TEST(Bda, BaseMemoryFollowsLowRam) {
  MachineLayout l;
  l.ram = {{0x50000, 0x50000}, {0, 0x50000}};  // split and unsorted: 0-0xa0000
  EXPECT_EQ(u16(bda_bytes(l), 0x13), 640);
  l.ram = {{0, 0x80000}, {0x100000, 0x100000}};
  EXPECT_EQ(u16(bda_bytes(l), 0x13), 512);
  l.ram = {{0x100000, 0x100000}};
  EXPECT_EQ(u16(bda_bytes(l), 0x13), 0);
}

TEST(Bda, WrittenOnlyIntoRam) {
  auto mem = testing::small_memory();
  ASSERT_TRUE(build_bda(testing::small_layout(), mem).ok());
  auto v = mem.read_obj<uint16_t>(0x400);
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(*v, 0x3f8);
  memory::GuestMemory high;
  ASSERT_TRUE(high.add_region(0x100000, 0x100000, false).ok());
  EXPECT_TRUE(build_bda(testing::small_layout(), high).ok());  // no low RAM: nothing to write
}

}  // namespace
}  // namespace qvm::arch::x86
