// virtio-entropy over the virtio-pci transport, end to end like a guest driver (virtio 1.2
// §3.1.1 init sequence, §4.1.5 interrupts): MSI-X delivery with the programmed message, masked
// vectors held pending, the INTx fallback with ISR read-to-clear, DEVICE_NEEDS_RESET.
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

constexpr uint8_t kBar = PciTransport::kVirtioBar;
constexpr uint8_t kMsixBar = PciTransport::kMsixBar;
constexpr uint32_t kOkAll = kStatusAcknowledge | kStatusDriver | kStatusFeaturesOk;

struct PciEntropyTest : ::testing::Test {
  memory::GuestMemory mem;
  FakeClock clock;
  std::shared_ptr<vdev::VirtioEntropy> dev;
  std::vector<std::pair<uint64_t, uint32_t>> msis;
  std::vector<bool> intx;
  std::shared_ptr<PciTransport> t;
  pci::PciRoot root;
  std::unique_ptr<PciGuest> g;
  std::unique_ptr<MockDriver> drv;
  uint16_t msix_cap = 0;

  void SetUp() override {
    ASSERT_TRUE(mem.add_region(0, 0x100000, false).ok());
    drv = std::make_unique<MockDriver>(mem, 16, 0x10000);
    dev = std::make_shared<vdev::VirtioEntropy>(clock, vdev::VirtioEntropy::Options{0},
                                                [](std::span<uint8_t> out) -> Status {
                                                  for (auto& b : out) b = 0x5a;
                                                  return {};
                                                });
    t = std::make_shared<PciTransport>(
        mem, dev, [this](uint64_t a, uint32_t d) { msis.emplace_back(a, d); },
        [this](bool l) { intx.push_back(l); });
    g = std::make_unique<PciGuest>(root, t);
    g->walk();
    msix_cap = g->other_caps().at(0x11);
    g->enable_memory();
  }

  // MSI-X table entry `v`: address, data, unmasked.
  void program_vector(uint16_t v, uint64_t addr, uint32_t data, bool masked = false) {
    g->bar_write(kMsixBar, 16u * v, 8, addr);
    g->bar_write(kMsixBar, 16u * v + 8, 4, data);
    g->bar_write(kMsixBar, 16u * v + 12, 4, masked ? 1 : 0);
  }
  void enable_msix() { g->cfg_write(static_cast<uint16_t>(msix_cap + 2), 2, 0x8000); }

  // §3.1.1 up to DRIVER_OK with queue 0 on MSI-X vector `qvec` (or none).
  void init(uint16_t cvec, uint16_t qvec) {
    const auto& caps = g->caps();
    ASSERT_EQ(caps.count(4), 0u);  // entropy has no device configuration
    ASSERT_EQ(caps.at(1).bar, kBar);
    g->set_common(0x14, 1, 0);
    g->set_common(0x14, 1, kStatusAcknowledge);
    g->set_common(0x14, 1, kStatusAcknowledge | kStatusDriver);
    g->set_common(0x00, 4, 1);
    ASSERT_EQ(g->common(0x04, 4), 1u);  // VERSION_1
    g->set_common(0x08, 4, 1);
    g->set_common(0x0c, 4, 1);
    g->set_common(0x14, 1, kOkAll);
    ASSERT_EQ(g->common(0x14, 1), kOkAll);
    g->set_common(0x10, 2, cvec);
    g->set_common(0x16, 2, 0);
    ASSERT_EQ(g->common(0x18, 2), vdev::VirtioEntropy::kQueueSize);
    g->set_common(0x18, 2, drv->size());
    g->set_common(0x1a, 2, qvec);
    g->set_common(0x20, 8, drv->desc_addr());
    g->set_common(0x28, 8, drv->avail_addr());
    g->set_common(0x30, 8, drv->used_addr());
    g->set_common(0x1c, 2, 1);
    ASSERT_EQ(g->common(0x1c, 2), 1u);
    g->set_common(0x14, 1, kOkAll | kStatusDriverOk);
    ASSERT_TRUE(t->activated());
  }
  // Publishes one 8-byte request and kicks queue 0 through the notify area.
  void request() {
    const Seg segs[] = {{8, true}};
    drv->add_and_publish(segs);
    const uint64_t off = g->common(0x1e, 2) * 4;  // queue_notify_off × multiplier
    g->bar_write(kBar, g->caps().at(2).offset + off, 2, 0);
  }
};

TEST_F(PciEntropyTest, MsixDeliversTheProgrammedMessage) {
  program_vector(0, 0xfee00000, 0x30);
  program_vector(1, 0xfee01000, 0x41);
  enable_msix();
  init(0, 1);
  request();
  ASSERT_EQ(drv->used_idx(), 1);
  EXPECT_EQ(drv->used(0).len, 8u);
  EXPECT_EQ(drv->read_bytes(drv->seg_addr(0), 1)[0], 0x5a);
  ASSERT_EQ(msis.size(), 1u);
  EXPECT_EQ(msis[0], std::make_pair(uint64_t{0xfee01000}, 0x41u));
  EXPECT_EQ(t->isr(), 0u);  // no ISR bit for queue interrupts under MSI-X
  EXPECT_TRUE(intx.empty());
  // The ioeventfd path.
  const Seg segs[] = {{4, true}};
  drv->add_and_publish(segs);
  t->handle_notify(0);
  EXPECT_EQ(drv->used_idx(), 2);
  EXPECT_EQ(msis.size(), 2u);
  t->handle_notify(1);  // no such queue
  EXPECT_EQ(msis.size(), 2u);
}

TEST_F(PciEntropyTest, MaskedVectorIsPendingUntilUnmasked) {
  program_vector(1, 0xfee02000, 0x52, /*masked=*/true);
  enable_msix();
  init(PciTransport::kNoVector, 1);
  request();
  EXPECT_EQ(drv->used_idx(), 1);
  EXPECT_TRUE(msis.empty());
  EXPECT_TRUE(t->msix().pending(1));
  EXPECT_EQ(g->bar_read(kMsixBar, t->msix().layout().pba_offset, 8), 2u);
  g->bar_write(kMsixBar, 16 + 12, 4, 0);  // unmask
  ASSERT_EQ(msis.size(), 1u);
  EXPECT_EQ(msis[0], std::make_pair(uint64_t{0xfee02000}, 0x52u));
  EXPECT_EQ(g->bar_read(kMsixBar, t->msix().layout().pba_offset, 8), 0u);
}

TEST_F(PciEntropyTest, NoVectorMeansNoInterrupt) {
  enable_msix();
  init(PciTransport::kNoVector, PciTransport::kNoVector);
  request();
  EXPECT_EQ(drv->used_idx(), 1);
  EXPECT_TRUE(msis.empty());
  EXPECT_TRUE(intx.empty());
}

TEST_F(PciEntropyTest, IntxWithIsrReadToClear) {
  init(PciTransport::kNoVector, PciTransport::kNoVector);  // MSI-X stays disabled
  request();
  EXPECT_EQ(drv->used_idx(), 1);
  EXPECT_TRUE(msis.empty());
  ASSERT_EQ(intx.size(), 1u);
  EXPECT_TRUE(intx[0]);
  EXPECT_TRUE(t->intx_level());
  const uint32_t isr_off = g->caps().at(3).offset;
  EXPECT_EQ(g->bar_read(kBar, isr_off, 1), kInterruptUsedBuffer);
  ASSERT_EQ(intx.size(), 2u);
  EXPECT_FALSE(intx[1]);
  EXPECT_EQ(g->bar_read(kBar, isr_off, 1), 0u);
  // INTx-Disable in the command register masks the line; clearing it re-asserts.
  g->cfg_write(0x04, 2, 0x406);
  request();
  EXPECT_EQ(t->isr(), kInterruptUsedBuffer);
  EXPECT_EQ(intx.size(), 2u);
  g->cfg_write(0x04, 2, 0x006);
  ASSERT_EQ(intx.size(), 3u);
  EXPECT_TRUE(intx[2]);
  // Enabling MSI-X drops INTx.
  enable_msix();
  ASSERT_EQ(intx.size(), 4u);
  EXPECT_FALSE(intx[3]);
}

TEST_F(PciEntropyTest, RingCorruptionSetsNeedsResetAndSignalsTheConfigVector) {
  program_vector(0, 0xfee00000, 0x30);
  program_vector(1, 0xfee01000, 0x41);
  enable_msix();
  init(0, 1);
  const auto gen = g->common(0x15, 1);
  drv->set_avail_idx(100);  // more than the queue size ahead
  t->handle_notify(0);
  EXPECT_NE(g->common(0x14, 1) & kStatusDeviceNeedsReset, 0u);
  EXPECT_NE(g->common(0x15, 1), gen);
  ASSERT_FALSE(msis.empty());
  EXPECT_EQ(msis.back(), std::make_pair(uint64_t{0xfee00000}, 0x30u));
  EXPECT_NE(t->isr() & kInterruptConfigChange, 0u);  // set even under MSI-X (§4.1.4.5)
  g->set_common(0x14, 1, 0);
  EXPECT_EQ(g->common(0x14, 1), 0u);
  EXPECT_EQ(t->isr(), 0u);
}

}  // namespace
}  // namespace qvm::virtio
