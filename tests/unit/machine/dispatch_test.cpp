// dispatch_io/dispatch_mmio with fabricated exits: no /dev/kvm needed.
#include "machine/dispatch.hpp"

#include <gtest/gtest.h>

namespace qvm::machine {
namespace {

struct Reg : bus::BusDevice {
  std::vector<uint8_t> writes;
  void read(uint64_t offset, std::span<uint8_t> d) override {
    for (size_t i = 0; i < d.size(); ++i) d[i] = static_cast<uint8_t>(0x10 + offset + i);
  }
  void write(uint64_t, std::span<const uint8_t> d) override {
    writes.insert(writes.end(), d.begin(), d.end());
  }
};

TEST(Dispatch, PortReadFillsData) {
  bus::Bus pio("pio");
  auto r = std::make_shared<Reg>();
  ASSERT_TRUE(pio.insert(0x3f8, 8, r, "uart").ok());
  uint8_t data[4] = {};
  kvm::IoExit e{0x3f9, 1, false, 1, std::span<uint8_t>(data, 1)};
  auto res = dispatch_io(e, pio, UnclaimedAction::kIgnore);
  EXPECT_FALSE(res.unclaimed);
  EXPECT_EQ(data[0], 0x11);
}

TEST(Dispatch, StringIoRepeats) {
  bus::Bus pio("pio");
  auto r = std::make_shared<Reg>();
  ASSERT_TRUE(pio.insert(0x3f8, 8, r, "uart").ok());
  uint8_t data[3] = {'a', 'b', 'c'};
  kvm::IoExit e{0x3f8, 1, true, 3, std::span<uint8_t>(data, 3)};
  dispatch_io(e, pio, UnclaimedAction::kIgnore);
  EXPECT_EQ(r->writes, (std::vector<uint8_t>{'a', 'b', 'c'}));
}

TEST(Dispatch, UnclaimedReadsAllOnesAndPolicyApplies) {
  bus::Bus pio("pio"), mmio("mmio");
  uint8_t data[4] = {};
  kvm::IoExit e{0x80, 4, false, 1, std::span<uint8_t>(data, 4)};
  auto res = dispatch_io(e, pio, UnclaimedAction::kIgnore);
  EXPECT_TRUE(res.unclaimed);
  EXPECT_FALSE(res.abort);
  EXPECT_EQ(res.address, 0x80u);
  EXPECT_EQ(data[3], 0xff);
  uint8_t md[8] = {};
  kvm::MmioExit m{0xd0000000, 8, false, std::span<uint8_t>(md, 8)};
  auto mres = dispatch_mmio(m, mmio, UnclaimedAction::kAbort);
  EXPECT_TRUE(mres.abort);
  EXPECT_EQ(md[7], 0xff);
}

TEST(Dispatch, MalformedExitsAreIgnored) {
  bus::Bus pio("pio");
  uint8_t data[2] = {};
  kvm::IoExit bad_size{0x10, 8, false, 1, std::span<uint8_t>(data, 2)};
  EXPECT_FALSE(dispatch_io(bad_size, pio, UnclaimedAction::kAbort).abort);
  kvm::IoExit short_data{0x10, 2, false, 5, std::span<uint8_t>(data, 2)};
  EXPECT_FALSE(dispatch_io(short_data, pio, UnclaimedAction::kAbort).abort);
  kvm::MmioExit zero{0, 0, false, std::span<uint8_t>(data, 2)};
  EXPECT_FALSE(dispatch_mmio(zero, pio, UnclaimedAction::kAbort).abort);
}

}  // namespace
}  // namespace qvm::machine
