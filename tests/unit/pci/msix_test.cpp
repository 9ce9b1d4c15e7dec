// MSI-X capability, table and PBA (PCI 3.0 §6.8.2), driven like a guest through config space
// and the BAR.
#include "pci/msix.hpp"

#include <gtest/gtest.h>

#include <vector>

namespace qvm::pci {
namespace {

struct MsixTest : ::testing::Test {
  ConfigSpace cfg{0x1af4, 0x1044, 0x00ff00, 1};
  std::vector<std::pair<uint64_t, uint32_t>> sent;
  Msix msix{cfg, Msix::packed(3, 2), [this](uint64_t a, uint32_t d) { sent.emplace_back(a, d); }};

  uint16_t ctl() const { return static_cast<uint16_t>(msix.cap_offset() + 2); }
  void write_ctl(uint16_t v) {
    cfg.write(ctl(), 2, v);
    msix.config_written(ctl(), 2);
  }
  uint32_t rd(uint64_t off) {
    uint8_t b[4];
    msix.read(off, b);
    return static_cast<uint32_t>(bus::load_le(b));
  }
  void wr(uint64_t off, uint32_t v) {
    uint8_t b[4];
    bus::store_le(b, v);
    msix.write(off, b);
  }
  void program(uint16_t vec, uint64_t addr, uint32_t data) {
    wr(vec * 16u, static_cast<uint32_t>(addr));
    wr(vec * 16u + 4, static_cast<uint32_t>(addr >> 32));
    wr(vec * 16u + 8, data);
  }
};

TEST_F(MsixTest, CapabilityLayoutAndWritableBits) {
  const uint16_t cap = msix.cap_offset();
  EXPECT_EQ(cfg.read(0x34, 1), cap);
  EXPECT_EQ(cfg.read(cap, 1), Msix::kCapId);
  EXPECT_EQ(cfg.read(ctl(), 2), 2u);  // table size N-1
  EXPECT_EQ(cfg.read(static_cast<uint16_t>(cap + 4), 4), 0u | 2u);
  EXPECT_EQ(cfg.read(static_cast<uint16_t>(cap + 8), 4), (3u * 16) | 2u);
  cfg.write(ctl(), 2, 0xffff);
  EXPECT_EQ(cfg.read(ctl(), 2), 0xc002u);  // only Enable and Function Mask stick
  cfg.write(static_cast<uint16_t>(cap + 4), 4, 0xffffffff);
  EXPECT_EQ(cfg.read(static_cast<uint16_t>(cap + 4), 4), 2u);  // read-only
  EXPECT_EQ(Msix::packed_size(3), 3u * 16 + 8);
  EXPECT_EQ(Msix::packed_size(65), 65u * 16 + 16);
}

TEST_F(MsixTest, EntriesResetMaskedAndTakeDwordAndQwordAccesses) {
  EXPECT_EQ(rd(12), 1u);  // Vector Control: masked
  wr(0, 0xfee00003);
  EXPECT_EQ(rd(0), 0xfee00000u);  // bits 1:0 read 0
  uint8_t q[8];
  bus::store_le(q, 0x0000000123456789ull);
  msix.write(16 + 8, q);  // data + vector control in one QWORD
  EXPECT_EQ(rd(16 + 8), 0x23456789u);
  EXPECT_EQ(rd(16 + 12), 1u);  // reserved bits dropped, mask kept
  uint8_t r[8];
  msix.read(16 + 8, r);
  EXPECT_EQ(bus::load_le(r), 0x0000000123456789ull);
  // Odd sizes and misaligned accesses: read 0, writes dropped.
  uint8_t b2[2] = {0xff, 0xff};
  msix.read(0, b2);
  EXPECT_EQ(bus::load_le(b2), 0u);
  msix.write(8, b2);
  uint8_t b4[4] = {1, 2, 3, 4};
  msix.write(2, b4);
  EXPECT_EQ(rd(0), 0xfee00000u);
  msix.read(20, q);  // QWORD access not QWORD aligned
  EXPECT_EQ(bus::load_le(q), 0u);
  // Past the PBA: nothing there.
  EXPECT_EQ(rd(0x800), 0u);
  wr(0x800, 1);
}

TEST_F(MsixTest, DeliveryWhenEnabledAndUnmasked) {
  program(1, 0xfee01000, 0x4041);
  write_ctl(0x8000);
  wr(16 + 12, 0);  // unmask vector 1
  msix.notify(1);
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0], std::make_pair(uint64_t{0xfee01000}, 0x4041u));
  msix.notify(7);  // out of range: ignored
  EXPECT_EQ(sent.size(), 1u);
}

TEST_F(MsixTest, MaskedVectorGoesPendingAndIsDeliveredOnUnmask) {
  program(2, 0xfee00000, 0x31);
  write_ctl(0x8000);
  msix.notify(2);  // vector still masked
  EXPECT_TRUE(sent.empty());
  EXPECT_TRUE(msix.pending(2));
  EXPECT_EQ(rd(3 * 16), 1u << 2);  // PBA bit 2
  wr(3 * 16, 0);                   // PBA is read-only
  EXPECT_EQ(rd(3 * 16), 1u << 2);
  wr(2 * 16 + 12, 0);  // unmask: delivered, pending cleared
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].second, 0x31u);
  EXPECT_FALSE(msix.pending(2));
  EXPECT_EQ(rd(3 * 16), 0u);
}

TEST_F(MsixTest, FunctionMaskAndDisableHoldMessagesPending) {
  program(0, 0xfee00000, 0x20);
  wr(12, 0);
  msix.notify(0);  // MSI-X not enabled yet
  EXPECT_TRUE(sent.empty());
  write_ctl(0xc000);  // enabled, function masked
  EXPECT_TRUE(msix.function_masked());
  msix.notify(0);
  EXPECT_TRUE(sent.empty());
  EXPECT_TRUE(msix.pending(0));
  write_ctl(0x8000);  // function unmasked: the pending message goes out once
  EXPECT_EQ(sent.size(), 1u);
  EXPECT_FALSE(msix.pending(0));
  msix.config_written(0x04, 2);  // unrelated config write: nothing happens
  EXPECT_EQ(sent.size(), 1u);
}

TEST_F(MsixTest, ResetMasksEverythingAndClearsControl) {
  program(0, 0xfee00000, 0x20);
  write_ctl(0x8000);
  wr(12, 0);
  msix.reset();
  EXPECT_FALSE(msix.enabled());
  EXPECT_EQ(cfg.read(ctl(), 2), 2u);
  EXPECT_EQ(rd(0), 0u);
  EXPECT_EQ(rd(12), 1u);
  EXPECT_TRUE(msix.vector_masked(0));
}

TEST_F(MsixTest, RouteIsTheMessageWhileDeliverableAndChangesAreReported) {
  int changes = 0;
  msix.set_on_change([&] { ++changes; });
  program(0, 0xfee02000, 0x55);  // three table writes
  EXPECT_EQ(changes, 3);
  EXPECT_FALSE(msix.route(0).has_value());  // not enabled, masked
  write_ctl(0x8000);
  EXPECT_EQ(changes, 4);
  EXPECT_FALSE(msix.route(0).has_value());  // vector masked
  wr(12, 0);
  ASSERT_TRUE(msix.route(0).has_value());
  EXPECT_EQ(*msix.route(0), (Msix::Route{0xfee02000, 0x55}));
  write_ctl(0xc000);  // function mask
  EXPECT_FALSE(msix.route(0).has_value());
  write_ctl(0x8000);
  wr(8, 0x66);
  EXPECT_EQ(msix.route(0)->data, 0x66u);
  EXPECT_FALSE(msix.route(7).has_value());  // out of range
  write_ctl(0);
  EXPECT_FALSE(msix.route(0).has_value());
  EXPECT_EQ(changes, 9);
}

TEST(Msix, VectorCountIsClampedAndTheTableCanSitAtAnOffset) {
  ConfigSpace cfg(1, 2, 0);
  Msix big(cfg, Msix::packed(5000, 0, 0x1003), nullptr);
  EXPECT_EQ(big.vectors(), Msix::kMaxVectors);
  EXPECT_EQ(big.layout().table_offset, 0x1000u);
  EXPECT_EQ(cfg.read(static_cast<uint16_t>(big.cap_offset() + 2), 2), 2047u);
  big.notify(3);  // no deliver function: stays pending, no crash
  uint8_t b[4];
  big.read(0x1000 + 3 * 16 + 12, b);
  EXPECT_EQ(bus::load_le(b), 1u);
  ConfigSpace cfg2(1, 2, 0);
  Msix none(cfg2, Msix::Layout{0, 9, 0, 0x100}, nullptr);
  EXPECT_EQ(none.vectors(), 1u);
  EXPECT_EQ(none.layout().bir, 1u);
}

}  // namespace
}  // namespace qvm::pci
