#include <gtest/gtest.h>

#include "pci/config_space.hpp"
#include "pci/pci_root.hpp"

namespace qvm::pci {
namespace {

struct Fn : PciFunction {
  ConfigSpace cfg{0x1af4, 0x1042, 0x018000};
  int writes = 0;
  ConfigSpace& config() override { return cfg; }
  void config_written(uint16_t, unsigned) override { ++writes; }
};

TEST(ConfigSpace, IdsAreReadOnly) {
  ConfigSpace c(0x1af4, 0x1042, 0x010000, 1);
  EXPECT_EQ(c.read(0, 4), 0x10421af4u);
  c.write(0, 4, 0);
  EXPECT_EQ(c.read(0, 4), 0x10421af4u);
  EXPECT_EQ(c.read(8, 4), 0x01000001u);
  c.write(4, 2, 0xffff);
  EXPECT_EQ(c.read(4, 2), 0x0407u);  // only IO, MEM, master, INTx-disable stick
}

TEST(ConfigSpace, BarSizingAndPlacement) {
  ConfigSpace c(1, 2, 0);
  c.add_bar({0, 0x4000, false, false, false, 0});
  c.add_bar({2, 0x100000, false, true, true, 0});
  c.add_bar({4, 0x40, true, false, false, 0});
  c.set_bar_address(0, 0xc0000000);
  EXPECT_EQ(c.read(0x10, 4), 0xc0000000u);
  c.write(0x10, 4, 0xffffffff);
  EXPECT_EQ(c.read(0x10, 4), 0xffffc000u);  // size 16 KiB, 32-bit memory
  c.write(0x10, 4, 0xc0004000);
  EXPECT_EQ(c.bar(0)->addr, 0xc0004000u);
  c.write(0x18, 4, 0xffffffff);
  c.write(0x1c, 4, 0xffffffff);
  EXPECT_EQ(c.read(0x18, 4), 0xfff0000cu);  // 64-bit, prefetchable
  EXPECT_EQ(c.read(0x1c, 4), 0xffffffffu);
  c.write(0x20, 4, 0xffffffff);
  EXPECT_EQ(c.read(0x20, 4), 0xffffffc1u);  // I/O BAR
  EXPECT_EQ(c.read(0x14, 4), 0u);           // BAR 1 absent: reads 0, ignores writes
  c.write(0x14, 4, 0xffffffff);
  EXPECT_EQ(c.read(0x14, 4), 0u);
}

TEST(ConfigSpace, CapabilityChain) {
  ConfigSpace c(1, 2, 0);
  const uint8_t a[6] = {1, 2, 3, 4, 5, 6};
  const uint8_t wa[6] = {0, 0xff, 0, 0, 0, 0};
  uint16_t first = c.add_capability(0x09, a, wa);
  uint16_t second = c.add_capability(0x11, a);
  EXPECT_EQ(c.read(0x06, 2) & 0x10, 0x10u);
  EXPECT_EQ(c.read(0x34, 1), first);
  EXPECT_EQ(c.read(first, 1), 0x09u);
  EXPECT_EQ(c.read(static_cast<uint16_t>(first + 1), 1), second);
  EXPECT_EQ(c.read(static_cast<uint16_t>(second + 1), 1), 0u);
  c.write(static_cast<uint16_t>(first + 3), 1, 0x77);
  EXPECT_EQ(c.read(static_cast<uint16_t>(first + 3), 1), 0x77u);
  c.write(static_cast<uint16_t>(first + 2), 1, 0x77);  // read-only byte
  EXPECT_EQ(c.read(static_cast<uint16_t>(first + 2), 1), 1u);
  EXPECT_EQ(c.read(4095, 4), 0u);  // clipped at the end, no overrun
}

TEST(PciRoot, HostBridgeAndAbsentFunctions) {
  PciRoot root;
  EXPECT_EQ(root.read(0, 0, 0, 0x0a, 2), 0x0600u);
  EXPECT_EQ(root.read(0, 1, 0, 0, 4), 0xffffffffu);
  EXPECT_EQ(root.read(1, 0, 0, 0, 4), 0xffffffffu);
  EXPECT_EQ(root.read(0, 0, 0, 4094, 4), 0xffffffffu);  // crosses the end
  root.write(0, 5, 0, 4, 2, 0xffff);                    // absent: dropped
  auto f = std::make_shared<Fn>();
  EXPECT_TRUE(root.add(3, 0, f));
  EXPECT_FALSE(root.add(3, 0, f));
  EXPECT_FALSE(root.add(32, 0, f));
  root.write(0, 3, 0, 4, 2, 0x2);
  EXPECT_EQ(f->writes, 1);
  EXPECT_TRUE(f->cfg.memory_enabled());
  EXPECT_TRUE(root.add(3, 1, std::make_shared<Fn>()));
  EXPECT_EQ(root.read(0, 3, 0, 0x0e, 1) & 0x80, 0x80u);  // multi-function
}

TEST(PioConfigAccess, Mechanism1AndResetPort) {
  PciRoot root;
  int reset_writes = 0;
  PioConfigAccess io(
      root, [&](uint8_t v) { reset_writes += v == 0x06; }, [] { return uint8_t{0}; });
  uint8_t d4[4];
  bus::store_le(d4, 0x80000000u | 0x08);  // bus 0 dev 0 fn 0 reg 8
  io.write(0, d4);
  io.read(0, d4);
  EXPECT_EQ(bus::load_le(d4), 0x80000008u);
  uint8_t d2[2];
  io.read(6, d2);  // CONFIG_DATA + 2: class code high half
  EXPECT_EQ(bus::load_le(d2), 0x0600u);
  bus::store_le(d4, 0x00000000u);  // enable bit clear: data reads all ones
  io.write(0, d4);
  io.read(4, d4);
  EXPECT_EQ(bus::load_le(d4), 0xffffffffu);
  uint8_t b = 0x06;
  io.write(1, std::span<const uint8_t>(&b, 1));
  EXPECT_EQ(reset_writes, 1);
}

TEST(EcamAccess, Decoding) {
  PciRoot root;
  auto f = std::make_shared<Fn>();
  ASSERT_TRUE(root.add(2, 1, f));
  EcamAccess ecam(root);
  uint8_t d4[4];
  ecam.read((2u << 15) | (1u << 12), d4);
  EXPECT_EQ(bus::load_le(d4), 0x10421af4u);
  ecam.read((1u << 20), d4);  // bus 1: nothing
  EXPECT_EQ(bus::load_le(d4), 0xffffffffu);
  uint8_t d2[2];
  ecam.read(1, d2);  // unaligned
  EXPECT_EQ(bus::load_le(d2), 0xffffu);
  uint8_t d8[8] = {};
  ecam.write(0, d8);  // 8-byte: dropped, no crash
}

}  // namespace
}  // namespace qvm::pci
