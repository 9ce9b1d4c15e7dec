// virtio-mmio register state machine (virtio 1.2 §4.2), driven like a guest driver.
#include "virtio/transport/mmio.hpp"

#include <gtest/gtest.h>

#include <array>

#include "vdev/common/irq_line.hpp"
#include "virtio/queue/testing/mock_driver.hpp"
#include "virtio/virtio_defs.hpp"

namespace qvm::virtio {
namespace {

using testing::MockDriver;

class FakeDevice final : public VirtioDevice {
 public:
  uint16_t sizes[2] = {64, 16};
  std::array<uint8_t, 8> config{1, 2, 3, 4, 5, 6, 7, 8};
  int activations = 0, resets = 0;
  std::vector<uint16_t> processed;
  uint64_t negotiated = 0;
  bool fail_activate = false;
  ActivationContext* ctx = nullptr;
  memory::GuestMemory* mem = nullptr;
  std::span<Queue> queues;
  VirtioInterrupt* irq = nullptr;

  uint32_t device_type() const override { return 42; }
  uint64_t device_features() const override { return feature_bit(0) | feature_bit(40); }
  std::span<const uint16_t> queue_max_sizes() const override { return sizes; }
  uint32_t config_size() const override { return static_cast<uint32_t>(config.size()); }
  void read_config(uint32_t off, std::span<uint8_t> d) const override {
    for (size_t i = 0; i < d.size(); ++i) d[i] = config[off + i];
  }
  void write_config(uint32_t off, std::span<const uint8_t> d) override {
    for (size_t i = 0; i < d.size(); ++i) config[off + i] = d[i];
  }
  Status activate(ActivationContext& c) override {
    if (fail_activate) return make_error("no");
    ++activations;
    negotiated = c.features;
    mem = &c.mem;
    queues = c.queues;
    irq = &c.interrupt;
    return {};
  }
  void reset() override {
    ++resets;
    irq = nullptr;
  }
  std::string status_text() const override { return "fake: " + std::to_string(processed.size()); }
  void process_queue(uint16_t i) override {
    processed.push_back(i);
    // Drain like a real device so ring corruption is seen.
    while (auto c = queues[i].next(*mem)) (void)queues[i].add_used(*mem, c->head, 0);
    if (queues[i].needs_notification(*mem)) irq->signal_used(i);
  }
};

struct MmioTest : ::testing::Test {
  memory::GuestMemory mem;
  std::shared_ptr<FakeDevice> dev = std::make_shared<FakeDevice>();
  vdev::RecordingIrqLine line;
  std::vector<std::pair<uint16_t, bool>> hook_calls;
  std::unique_ptr<MmioTransport> t;
  std::unique_ptr<MockDriver> drv;

  void make(bool legacy = false) {
    t = std::make_unique<MmioTransport>(
        mem, dev, [this] { line.pulse(); }, MmioOptions{legacy, 0x1c05});
    t->set_queue_ready_hook([this](uint16_t q, bool r) { hook_calls.emplace_back(q, r); });
  }
  void SetUp() override {
    ASSERT_TRUE(mem.add_region(0, 0x100000, false).ok());
    drv = std::make_unique<MockDriver>(mem, 64);
    make();
  }
  uint32_t rd(uint64_t off) {
    uint8_t b[4];
    t->read(off, b);
    return static_cast<uint32_t>(bus::load_le(b));
  }
  void wr(uint64_t off, uint32_t v) {
    uint8_t b[4];
    bus::store_le(b, v);
    t->write(off, b);
  }
  void negotiate(uint64_t features) {
    wr(0x70, kStatusAcknowledge);
    wr(0x70, kStatusAcknowledge | kStatusDriver);
    wr(0x24, 0);
    wr(0x20, static_cast<uint32_t>(features));
    wr(0x24, 1);
    wr(0x20, static_cast<uint32_t>(features >> 32));
    wr(0x70, kStatusAcknowledge | kStatusDriver | kStatusFeaturesOk);
  }
  void setup_queue0() {
    wr(0x30, 0);
    wr(0x38, 64);
    wr(0x80, static_cast<uint32_t>(drv->desc_addr()));
    wr(0x84, 0);
    wr(0x90, static_cast<uint32_t>(drv->avail_addr()));
    wr(0x94, 0);
    wr(0xa0, static_cast<uint32_t>(drv->used_addr()));
    wr(0xa4, 0);
    wr(0x44, 1);
  }
  static constexpr uint32_t kAll =
      kStatusAcknowledge | kStatusDriver | kStatusFeaturesOk | kStatusDriverOk;
};

TEST_F(MmioTest, IdentityRegisters) {
  EXPECT_EQ(rd(0x00), 0x74726976u);
  EXPECT_EQ(rd(0x04), 2u);
  EXPECT_EQ(rd(0x08), 42u);
  EXPECT_EQ(rd(0x0c), 0x1c05u);
  wr(0x30, 1);
  EXPECT_EQ(rd(0x34), 16u);
  wr(0x30, 2);
  EXPECT_EQ(rd(0x34), 0u);           // no such queue
  EXPECT_EQ(rd(0xb0), 0xffffffffu);  // no shared memory regions
}

TEST_F(MmioTest, OfferedFeaturesIncludeTransportBits) {
  wr(0x14, 0);
  const uint32_t lo = rd(0x10);
  wr(0x14, 1);
  const uint32_t hi = rd(0x10);
  EXPECT_EQ(lo, (1u << 0) | (1u << kFeatureIndirectDesc) | (1u << kFeatureEventIdx));
  EXPECT_EQ(hi, (1u << (kFeatureVersion1 - 32)) | (1u << 8));
  wr(0x14, 2);
  EXPECT_EQ(rd(0x10), 0u);
}

TEST_F(MmioTest, FeaturesOkOnlyForOfferedBitsWithVersion1) {
  negotiate(feature_bit(0) | feature_bit(5) | feature_bit(kFeatureVersion1));  // bit 5 not offered
  EXPECT_EQ(rd(0x70) & kStatusFeaturesOk, 0u);
  wr(0x70, 0);
  negotiate(feature_bit(0));  // no VERSION_1
  EXPECT_EQ(rd(0x70) & kStatusFeaturesOk, 0u);
  wr(0x70, 0);
  negotiate(feature_bit(0) | feature_bit(kFeatureVersion1));
  EXPECT_NE(rd(0x70) & kStatusFeaturesOk, 0u);
  wr(0x24, 0);
  wr(0x20, 0);  // after FEATURES_OK: ignored
  EXPECT_EQ(t->driver_features(), feature_bit(0) | feature_bit(kFeatureVersion1));
}

TEST_F(MmioTest, StatusBitsCannotBeClearedExceptByReset) {
  negotiate(feature_bit(kFeatureVersion1));
  wr(0x70, kStatusAcknowledge);
  EXPECT_EQ(rd(0x70), kStatusAcknowledge | kStatusDriver | kStatusFeaturesOk);
  wr(0x70, rd(0x70) | kStatusDeviceNeedsReset);  // device-only bit
  EXPECT_EQ(rd(0x70) & kStatusDeviceNeedsReset, 0u);
}

TEST_F(MmioTest, DriverOkWithoutFeaturesOkIsIgnored) {
  wr(0x70, kStatusAcknowledge | kStatusDriver);
  wr(0x70, kStatusAcknowledge | kStatusDriver | kStatusDriverOk);
  EXPECT_EQ(rd(0x70) & kStatusDriverOk, 0u);
  EXPECT_EQ(dev->activations, 0);
}

TEST_F(MmioTest, QueueSetupActivationNotifyAndInterrupt) {
  negotiate(feature_bit(kFeatureVersion1) | feature_bit(kFeatureEventIdx));
  setup_queue0();
  EXPECT_EQ(rd(0x44), 1u);
  ASSERT_EQ(hook_calls.size(), 1u);
  EXPECT_EQ(hook_calls[0], std::make_pair(uint16_t{0}, true));
  EXPECT_EQ(t->notify_match(0).offset, 0x50u);
  EXPECT_EQ(t->notify_match(1).value, 1u);
  wr(0x50, 0);  // before DRIVER_OK: nothing runs
  EXPECT_TRUE(dev->processed.empty());
  wr(0x70, kAll);
  EXPECT_EQ(dev->activations, 1);
  EXPECT_TRUE(t->activated());
  EXPECT_TRUE(dev->queues[0].event_idx());
  const MockDriver::Seg segs[] = {{8, true}};
  drv->add_and_publish(segs);
  wr(0x50, 0);
  ASSERT_EQ(dev->processed.size(), 1u);
  EXPECT_EQ(drv->used_idx(), 1);
  EXPECT_EQ(rd(0x60), kInterruptUsedBuffer);
  EXPECT_EQ(line.raises, 1);
  wr(0x64, kInterruptUsedBuffer);
  EXPECT_EQ(rd(0x60), 0u);
  t->handle_notify(0);  // the ioeventfd path
  EXPECT_EQ(dev->processed.size(), 2u);
  t->handle_notify(1);  // queue 1 not ready
  t->handle_notify(9);  // no such queue
  wr(0x50, 77);
  EXPECT_EQ(dev->processed.size(), 2u);
}

TEST_F(MmioTest, StatusReportShowsStatusReadyQueuesAndTheDevice) {
  EXPECT_EQ(t->status_report(), std::vector<std::string>{"status 0x00, features 0x0"});
  negotiate(feature_bit(kFeatureVersion1));
  setup_queue0();
  wr(0x70, kAll);
  const MockDriver::Seg segs[] = {{8, true}};
  drv->add_and_publish(segs);
  wr(0x50, 0);
  const std::vector<std::string> want = {
      "status 0x0f ACKNOWLEDGE DRIVER FEATURES_OK DRIVER_OK, features 0x100000000",
      "queue 0: size 64 avail 1 next_avail 1 (0 pending) used 1",  // queue 1 is not ready
      "fake: 1"};
  EXPECT_EQ(t->status_report(), want);
}

TEST_F(MmioTest, QueueRegistersLockedWhileReadyAndBadQueuesRefused) {
  negotiate(feature_bit(kFeatureVersion1));
  wr(0x30, 0);
  wr(0x38, 48);  // not a power of two
  wr(0x80, 0);
  wr(0x90, 0x400);
  wr(0xa0, 0x1000);
  wr(0x44, 1);
  EXPECT_EQ(rd(0x44), 0u);
  EXPECT_TRUE(hook_calls.empty());
  wr(0x38, 64);
  wr(0x90, 0xfffff000);  // avail ring outside guest memory
  wr(0x44, 1);
  EXPECT_EQ(rd(0x44), 0u);
  setup_queue0();
  EXPECT_EQ(rd(0x44), 1u);
  wr(0x80, 0x8000);  // ignored while ready
  EXPECT_EQ(rd(0x80), drv->desc_addr());
  wr(0x44, 0);
  EXPECT_EQ(rd(0x44), 0u);
  EXPECT_EQ(hook_calls.back(), std::make_pair(uint16_t{0}, false));
}

TEST_F(MmioTest, ResetClearsEverythingAndResetsTheDevice) {
  negotiate(feature_bit(kFeatureVersion1));
  setup_queue0();
  wr(0x70, kAll);
  ASSERT_TRUE(t->activated());
  wr(0x70, 0);
  EXPECT_EQ(dev->resets, 1);
  EXPECT_FALSE(t->activated());
  EXPECT_EQ(rd(0x70), 0u);
  EXPECT_EQ(rd(0x44), 0u);
  EXPECT_EQ(t->driver_features(), 0u);
  EXPECT_EQ(hook_calls.back(), std::make_pair(uint16_t{0}, false));
}

TEST_F(MmioTest, MalformedRingSetsDeviceNeedsReset) {
  negotiate(feature_bit(kFeatureVersion1));
  setup_queue0();
  wr(0x70, kAll);
  const uint32_t gen = rd(0xfc);
  drv->set_avail_idx(200);  // more than the queue size ahead
  t->handle_notify(0);
  EXPECT_NE(rd(0x70) & kStatusDeviceNeedsReset, 0u);
  EXPECT_NE(rd(0x60) & kInterruptConfigChange, 0u);
  EXPECT_NE(rd(0xfc), gen);
  wr(0x70, 0);
  EXPECT_EQ(rd(0x70), 0u);
}

TEST_F(MmioTest, ActivationFailureSetsDeviceNeedsReset) {
  dev->fail_activate = true;
  negotiate(feature_bit(kFeatureVersion1));
  wr(0x70, kAll);
  EXPECT_FALSE(t->activated());
  EXPECT_NE(rd(0x70) & kStatusDeviceNeedsReset, 0u);
}

TEST_F(MmioTest, OddSizedRegisterAccessesReadZeroAndAreIgnored) {
  uint8_t b2[2] = {0xff, 0xff};
  t->read(0x00, b2);
  EXPECT_EQ(b2[0], 0);
  EXPECT_EQ(b2[1], 0);
  uint8_t one[1] = {kStatusAcknowledge};
  t->write(0x70, one);
  EXPECT_EQ(rd(0x70), 0u);
  uint8_t b4[4] = {0xff, 0xff, 0xff, 0xff};
  t->read(0x02, b4);  // misaligned
  EXPECT_EQ(bus::load_le(b4), 0u);
  EXPECT_EQ(rd(0x0f0), 0u);  // unknown register
  wr(0x0f0, 1);
}

TEST_F(MmioTest, ConfigSpaceAccessesAreBoundsChecked) {
  uint8_t b1[1];
  t->read(0x103, b1);
  EXPECT_EQ(b1[0], 4);
  uint8_t b2[2];
  t->read(0x106, b2);
  EXPECT_EQ(bus::load_le(b2), 0x0807u);
  uint8_t b8[8];
  t->read(0x100, b8);
  EXPECT_EQ(bus::load_le(b8), 0x0807060504030201ull);
  uint8_t b4[4] = {0xff, 0xff, 0xff, 0xff};
  t->read(0x106, b4);  // crosses the end of config space
  EXPECT_EQ(bus::load_le(b4), 0u);
  t->read(0x1fc, b4);
  EXPECT_EQ(bus::load_le(b4), 0u);
  const uint8_t w[2] = {0xaa, 0xbb};
  t->write(0x100, w);
  EXPECT_EQ(dev->config[1], 0xbb);
  t->write(0x107, w);  // out of range: ignored
  EXPECT_EQ(dev->config[7], 8);
}

TEST_F(MmioTest, LegacyLayoutWithQueuePfn) {
  make(/*legacy=*/true);
  EXPECT_EQ(rd(0x04), 1u);
  wr(0x14, 1);
  EXPECT_EQ(rd(0x10), 0u);  // no VERSION_1, only 32 feature bits
  wr(0x28, 4096);           // GuestPageSize
  wr(0x70, kStatusAcknowledge | kStatusDriver);
  wr(0x24, 0);
  wr(0x20, 1u << kFeatureIndirectDesc);
  wr(0x30, 0);
  wr(0x38, 16);
  wr(0x3c, 4096);
  wr(0x40, 0x10);  // rings at 0x10000
  EXPECT_EQ(rd(0x40), 0x10u);
  ASSERT_EQ(hook_calls.size(), 1u);
  wr(0x70, kStatusAcknowledge | kStatusDriver | kStatusDriverOk);
  ASSERT_TRUE(t->activated());
  Queue& q = dev->queues[0];
  EXPECT_EQ(q.desc_addr(), 0x10000u);
  EXPECT_EQ(q.avail_addr(), 0x10000u + 16 * 16);
  EXPECT_EQ(q.used_addr(), 0x11000u);
  EXPECT_EQ(q.size(), 16);
  EXPECT_EQ(rd(0x44), 0u);  // QueueReady does not exist in version 1
  wr(0x40, 0);
  EXPECT_FALSE(q.ready());
  EXPECT_EQ(hook_calls.back(), std::make_pair(uint16_t{0}, false));
}

TEST_F(MmioTest, LegacyQueuePfnNeedsAPageSize) {
  make(true);
  wr(0x30, 0);
  wr(0x40, 0x10);  // GuestPageSize never written
  EXPECT_EQ(rd(0x40), 0u);
  wr(0x28, 4096);
  wr(0x40, 0xffffffff);  // far outside guest memory
  EXPECT_EQ(rd(0x40), 0u);
  EXPECT_TRUE(hook_calls.empty());
}

}  // namespace
}  // namespace qvm::virtio
