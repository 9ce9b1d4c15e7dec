// The legacy (virtio 0.9.5) virtio-pci transport, driven like a legacy guest driver (virtio 1.2
// §4.1.4.8, §4.1.5 legacy parts) through configuration space and I/O BAR 0 with virtio-entropy
// behind it: identity, feature negotiation, PFN queue setup, the shared notify register, used
// ring, ISR read-to-clear with the INTx level, MSI-X with the two extra vector registers; and the
// malformed cases a hostile guest can produce.
#include <gtest/gtest.h>

#include "base/clock.hpp"
#include "pci_test_util.hpp"
#include "vdev/virtio_entropy/virtio_entropy.hpp"
#include "virtio/queue/testing/mock_driver.hpp"
#include "virtio/virtio_defs.hpp"

namespace qvm::virtio {
namespace {

using testing::MockDriver;
using testing::PciGuest;
using Seg = MockDriver::Seg;

constexpr uint8_t kIo = PciTransport::kLegacyBar;
constexpr uint8_t kMsixBar = PciTransport::kMsixBar;
// Legacy header (§4.1.4.8).
constexpr uint64_t kHostFeatures = 0x00;
constexpr uint64_t kGuestFeatures = 0x04;
constexpr uint64_t kQueuePfn = 0x08;
constexpr uint64_t kQueueNum = 0x0c;
constexpr uint64_t kQueueSel = 0x0e;
constexpr uint64_t kQueueNotify = 0x10;
constexpr uint64_t kStatus = 0x12;
constexpr uint64_t kIsr = 0x13;
constexpr uint64_t kConfigVector = 0x14;
constexpr uint64_t kQueueVector = 0x16;
constexpr uint32_t kRingPfn = 0x10;  // rings at 0x10000
constexpr uint32_t kAckDriver = kStatusAcknowledge | kStatusDriver;

struct PciLegacyTest : ::testing::Test {
  memory::GuestMemory mem;
  FakeClock clock;
  std::shared_ptr<vdev::VirtioEntropy> dev;
  std::vector<std::pair<uint64_t, uint32_t>> msis;
  std::vector<bool> intx;
  std::shared_ptr<PciTransport> t;
  pci::PciRoot root;
  std::unique_ptr<PciGuest> g;
  std::unique_ptr<MockDriver> drv;

  void SetUp() override {
    ASSERT_TRUE(mem.add_region(0, 0x100000, false).ok());
    drv = std::make_unique<MockDriver>(mem, vdev::VirtioEntropy::kQueueSize,
                                       uint64_t{kRingPfn} << 12, 4096);
    dev = std::make_shared<vdev::VirtioEntropy>(clock, vdev::VirtioEntropy::Options{0},
                                                [](std::span<uint8_t> out) -> Status {
                                                  for (auto& b : out) b = 0x5a;
                                                  return {};
                                                });
    PciOptions opts;
    opts.legacy = true;
    t = std::make_shared<PciTransport>(
        mem, dev, [this](uint64_t a, uint32_t d) { msis.emplace_back(a, d); },
        [this](bool l) { intx.push_back(l); }, opts);
    g = std::make_unique<PciGuest>(root, t);
    g->cfg_write(0x04, 2, 0x5);  // I/O space + bus master, as pci_enable_device
  }

  uint64_t rd(uint64_t off, size_t n) { return g->bar_read(kIo, off, n); }
  void wr(uint64_t off, size_t n, uint64_t v) { g->bar_write(kIo, off, n, v); }

  // The Linux legacy probe: reset, ACK, DRIVER, features, queue 0 by PFN, DRIVER_OK.
  void init(uint32_t features = 0) {
    wr(kStatus, 1, 0);
    wr(kStatus, 1, kStatusAcknowledge);
    wr(kStatus, 1, kAckDriver);
    ASSERT_EQ(rd(kHostFeatures, 4),
              feature_bit(kFeatureIndirectDesc) | feature_bit(kFeatureEventIdx));
    wr(kGuestFeatures, 4, features);
    wr(kQueueSel, 2, 0);
    ASSERT_EQ(rd(kQueueNum, 2), vdev::VirtioEntropy::kQueueSize);
    ASSERT_EQ(rd(kQueuePfn, 4), 0u);  // not in use yet
    wr(kQueuePfn, 4, kRingPfn);
    ASSERT_EQ(rd(kQueuePfn, 4), kRingPfn);
    wr(kStatus, 1, kAckDriver | kStatusDriverOk);
    ASSERT_TRUE(t->activated());
  }
  void request(uint64_t notify_value = 0) {
    const Seg segs[] = {{8, true}};
    drv->add_and_publish(segs);
    wr(kQueueNotify, 2, notify_value);
  }
};

TEST_F(PciLegacyTest, Identity) {
  EXPECT_EQ(g->cfg_read(0x00, 2), 0x1af4u);
  EXPECT_EQ(g->cfg_read(0x02, 2), 0x1005u);  // transitional entropy ID
  EXPECT_EQ(g->cfg_read(0x08, 1), 0u);       // revision 0
  EXPECT_EQ(g->cfg_read(0x2c, 2), 0x1c05u);
  EXPECT_EQ(g->cfg_read(0x2e, 2), kDeviceIdEntropy);  // subsystem device = device type
  EXPECT_EQ(g->cfg_read(0x3d, 1), 1u);                // INTA#
  // BAR 0 is I/O space sized by the header + configuration; sizing reads back the mask.
  const auto bars = t->bars();
  ASSERT_EQ(bars.size(), 2u);
  EXPECT_EQ(bars[0].index, kIo);
  EXPECT_TRUE(bars[0].io);
  EXPECT_EQ(bars[0].size, 0x20u);
  EXPECT_EQ(g->cfg_read(0x10, 4) & 0x3, 1u);
  g->cfg_write(0x10, 4, 0xffffffff);
  EXPECT_EQ(g->cfg_read(0x10, 4), 0xffffffe1u);
  g->cfg_write(0x10, 4, 0xc040);
  EXPECT_EQ(g->cfg_read(0x10, 4), 0xc041u);
  // No virtio capabilities (a legacy driver must not see a modern device); MSI-X is there.
  g->walk();
  EXPECT_TRUE(g->caps().empty());
  EXPECT_EQ(g->other_caps().count(0x11), 1u);
  EXPECT_EQ(t->bar_device(PciTransport::kVirtioBar), nullptr);
  const auto m = t->notify_match(0);
  EXPECT_EQ(m.bar, kIo);
  EXPECT_EQ(m.offset, kQueueNotify);
  EXPECT_EQ(m.len, 2u);
  EXPECT_TRUE(m.io);
  EXPECT_EQ(m.datamatch, std::optional<uint64_t>{0});
  EXPECT_EQ(PciTransport::legacy_device_id(kDeviceIdNet), 0x1000);
  EXPECT_EQ(PciTransport::legacy_device_id(kDeviceIdBlock), 0x1001);
  EXPECT_EQ(PciTransport::legacy_device_id(kDeviceIdConsole), 0x1003);
  EXPECT_EQ(PciTransport::legacy_device_id(kDeviceIdEntropy), 0x1005);
  EXPECT_FALSE(PciTransport::legacy_device_id(0x2a).has_value());
}

TEST_F(PciLegacyTest, DriverSequenceWithIntx) {
  init(static_cast<uint32_t>(feature_bit(kFeatureEventIdx)));
  EXPECT_EQ(rd(kGuestFeatures, 4), feature_bit(kFeatureEventIdx));
  EXPECT_EQ(t->driver_features(), feature_bit(kFeatureEventIdx));
  request();
  ASSERT_EQ(drv->used_idx(), 1);
  EXPECT_EQ(drv->used(0).len, 8u);
  EXPECT_EQ(drv->read_bytes(drv->seg_addr(0), 1)[0], 0x5a);
  // Rings where the legacy layout puts them: used at the next 4096 boundary after avail.
  EXPECT_EQ(drv->used_addr(), 0x12000u);
  EXPECT_EQ(t->isr(), kInterruptUsedBuffer);
  ASSERT_EQ(intx, std::vector<bool>{true});
  EXPECT_EQ(rd(kIsr, 1), kInterruptUsedBuffer);  // read clears and drops INTx
  EXPECT_EQ(t->isr(), 0u);
  EXPECT_EQ(intx, (std::vector<bool>{true, false}));
  EXPECT_EQ(rd(kIsr, 1), 0u);
  EXPECT_TRUE(msis.empty());
  // The ioeventfd path (datamatch = queue 0).
  const Seg segs[] = {{4, true}};
  drv->add_and_publish(segs);
  t->handle_notify(0);
  EXPECT_EQ(drv->used_idx(), 2);
  // Features are frozen after DRIVER_OK.
  wr(kGuestFeatures, 4, 0);
  EXPECT_EQ(t->driver_features(), feature_bit(kFeatureEventIdx));
  // Reset: status 0 stops the queue and forgets its PFN.
  wr(kStatus, 1, 0);
  EXPECT_FALSE(t->activated());
  EXPECT_EQ(rd(kStatus, 1), 0u);
  EXPECT_EQ(rd(kQueuePfn, 4), 0u);
}

TEST_F(PciLegacyTest, MsixAddsVectorRegistersAndMovesConfig) {
  EXPECT_EQ(rd(kConfigVector, 2), 0u);  // without MSI-X this is device config (none: 0)
  g->walk();
  const uint16_t cap = g->other_caps().at(0x11);
  g->cfg_write(0x04, 2, 0x7);  // memory too, for the MSI-X BAR
  g->bar_write(kMsixBar, 16, 8, 0xfee01000);
  g->bar_write(kMsixBar, 16 + 8, 4, 0x41);
  g->bar_write(kMsixBar, 16 + 12, 4, 0);
  g->cfg_write(static_cast<uint16_t>(cap + 2), 2, 0x8000);
  wr(kStatus, 1, kAckDriver);
  wr(kConfigVector, 2, 0);
  EXPECT_EQ(rd(kConfigVector, 2), 0u);
  wr(kQueueSel, 2, 0);
  wr(kQueueVector, 2, 1);
  EXPECT_EQ(rd(kQueueVector, 2), 1u);
  wr(kQueueVector, 2, 999);  // beyond the table: NO_VECTOR
  EXPECT_EQ(rd(kQueueVector, 2), PciTransport::kNoVector);
  wr(kQueueVector, 2, 1);
  wr(kQueueSel, 2, 9);
  EXPECT_EQ(rd(kQueueVector, 2), PciTransport::kNoVector);
  wr(kQueueVector, 2, 0);  // no such queue: ignored
  wr(kQueueSel, 2, 0);
  wr(kQueuePfn, 4, kRingPfn);
  wr(kStatus, 1, kAckDriver | kStatusDriverOk);
  ASSERT_TRUE(t->activated());
  request();
  EXPECT_EQ(drv->used_idx(), 1);
  ASSERT_EQ(msis.size(), 1u);
  EXPECT_EQ(msis[0], std::make_pair(uint64_t{0xfee01000}, 0x41u));
  EXPECT_TRUE(intx.empty());
}

TEST_F(PciLegacyTest, PfnOutsideMemoryIsRefused) {
  wr(kStatus, 1, kAckDriver);
  wr(kQueueSel, 2, 0);
  wr(kQueuePfn, 4, 0xfffff);  // 4 GiB - 4 KiB: no RAM there
  EXPECT_EQ(rd(kQueuePfn, 4), 0u);
  wr(kQueuePfn, 4, 0xffffffff);  // rings beyond 2^43: no overflow, refused
  EXPECT_EQ(rd(kQueuePfn, 4), 0u);
  wr(kQueuePfn, 4, 0xff);  // the used ring would cross the end of RAM
  EXPECT_EQ(rd(kQueuePfn, 4), 0u);
  wr(kStatus, 1, kAckDriver | kStatusDriverOk);
  ASSERT_TRUE(t->activated());
  request();  // the queue is not ready: nothing happens
  EXPECT_EQ(drv->used_idx(), 0);
  EXPECT_TRUE(intx.empty());
}

TEST_F(PciLegacyTest, QueueSelectOutOfRange) {
  wr(kStatus, 1, kAckDriver);
  wr(kQueueSel, 2, 1);
  EXPECT_EQ(rd(kQueueSel, 2), 1u);
  EXPECT_EQ(rd(kQueueNum, 2), 0u);  // no such queue
  wr(kQueuePfn, 4, kRingPfn);
  EXPECT_EQ(rd(kQueuePfn, 4), 0u);
  wr(kQueueSel, 2, 0xffff);
  EXPECT_EQ(rd(kQueueNum, 2), 0u);
  wr(kQueueSel, 2, 0);
  EXPECT_EQ(rd(kQueuePfn, 4), 0u);  // queue 0 untouched
  // A notify for a queue that does not exist is ignored.
  init();
  request(7);
  EXPECT_EQ(drv->used_idx(), 0);
  wr(kQueueNotify, 2, 0);
  EXPECT_EQ(drv->used_idx(), 1);
}

TEST_F(PciLegacyTest, OddAccessesAreIgnored) {
  init();
  request();
  ASSERT_EQ(t->isr(), kInterruptUsedBuffer);
  EXPECT_EQ(rd(kIsr, 4), 0u);  // wrong width: reads 0, does not clear
  EXPECT_EQ(rd(kIsr, 2), 0u);
  EXPECT_EQ(t->isr(), kInterruptUsedBuffer);
  EXPECT_EQ(rd(kHostFeatures, 2), 0u);
  EXPECT_EQ(rd(kHostFeatures + 1, 1), 0u);
  EXPECT_EQ(rd(kQueueNum, 4), 0u);
  EXPECT_EQ(rd(kQueueNotify, 2), 0u);  // write-only
  wr(kStatus, 4, 0);                   // not a reset: wrong width
  EXPECT_TRUE(t->activated());
  wr(kStatus, 2, 0);
  EXPECT_TRUE(t->activated());
  wr(kQueueSel, 1, 3);
  EXPECT_EQ(rd(kQueueSel, 2), 0u);
  wr(kQueuePfn, 2, 0);  // would stop the queue at the right width
  EXPECT_EQ(rd(kQueuePfn, 4), kRingPfn);
  wr(kQueueNotify, 1, 0);
  wr(kQueueNotify, 4, 0);
  EXPECT_EQ(drv->used_idx(), 1);
  wr(kHostFeatures, 4, 0xffffffff);  // read-only
  wr(kQueueNum, 2, 4);               // read-only in legacy
  EXPECT_EQ(rd(kQueueNum, 2), vdev::VirtioEntropy::kQueueSize);
  wr(kIsr, 1, 0);  // read-only
  EXPECT_EQ(rd(kIsr, 1), kInterruptUsedBuffer);
  // Beyond the configuration (none for entropy) and the BAR.
  EXPECT_EQ(rd(0x1c, 4), 0u);
  EXPECT_EQ(rd(0x1000, 4), 0u);
  wr(0x1f, 1, 0xff);
  // A PFN rewrite of an active queue is refused; 0 stops it.
  wr(kQueuePfn, 4, kRingPfn + 8);
  EXPECT_EQ(rd(kQueuePfn, 4), kRingPfn);
  wr(kQueuePfn, 4, 0);
  EXPECT_EQ(rd(kQueuePfn, 4), 0u);
}

TEST_F(PciLegacyTest, UnofferedFeaturesBlockDriverOk) {
  wr(kStatus, 1, kAckDriver);
  wr(kGuestFeatures, 4, 0x1);  // not offered
  wr(kQueuePfn, 4, kRingPfn);
  wr(kStatus, 1, kAckDriver | kStatusDriverOk);
  EXPECT_FALSE(t->activated());
  EXPECT_EQ(rd(kStatus, 1) & kStatusDriverOk, 0u);
}

TEST_F(PciLegacyTest, IoDecodingOffReadsAllOnes) {
  g->cfg_write(0x04, 2, 0x4);
  EXPECT_EQ(rd(kStatus, 1), 0xffu);
  EXPECT_EQ(rd(kHostFeatures, 4), 0xffffffffu);
  wr(kStatus, 1, kAckDriver);  // dropped
  g->cfg_write(0x04, 2, 0x5);
  EXPECT_EQ(rd(kStatus, 1), 0u);
}

TEST_F(PciLegacyTest, BarHookFollowsIoDecoding) {
  std::vector<std::pair<uint8_t, std::optional<uint64_t>>> seen;
  t->set_bar_hook([&](uint8_t bar, std::optional<uint64_t> a) { seen.emplace_back(bar, a); });
  g->cfg_write(0x10, 4, 0xc080);  // decoding on: reported
  ASSERT_FALSE(seen.empty());
  EXPECT_EQ(seen.back(), std::make_pair(kIo, std::optional<uint64_t>{0xc080}));
  seen.clear();
  g->cfg_write(0x04, 2, 0x4);  // I/O off
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0], std::make_pair(kIo, std::optional<uint64_t>{}));
}

}  // namespace
}  // namespace qvm::virtio
