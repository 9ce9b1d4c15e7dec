// virtio-entropy (virtio 1.2 §5.4) with a fake random source and a fake clock.
#include <gtest/gtest.h>

#include "vdev/common/irq_line.hpp"
#include "vdev/virtio_entropy/virtio_entropy.hpp"
#include "virtio/queue/testing/mock_driver.hpp"
#include "virtio/transport/mmio.hpp"
#include "virtio/virtio_defs.hpp"

namespace qvm::vdev {
namespace {

using virtio::testing::MockDriver;
using Seg = MockDriver::Seg;

class CountingInterrupt final : public virtio::VirtioInterrupt {
 public:
  int used = 0;
  void signal_used(uint16_t) override { ++used; }
  void signal_config() override {}
};

struct EntropyTest : ::testing::Test {
  memory::GuestMemory mem;
  FakeClock clock;
  uint8_t next_byte = 1;
  bool source_fails = false;
  std::vector<virtio::Queue> queues{virtio::Queue(VirtioEntropy::kQueueSize)};
  CountingInterrupt irq;
  std::unique_ptr<MockDriver> drv;
  std::unique_ptr<VirtioEntropy> dev;

  VirtioEntropy::Source source() {
    return [this](std::span<uint8_t> out) -> Status {
      if (source_fails) return make_error("no entropy");
      for (auto& b : out) b = next_byte++;
      return {};
    };
  }
  void make(uint64_t rate) {
    ASSERT_TRUE(mem.add_region(0, 0x100000, false).ok());
    drv = std::make_unique<MockDriver>(mem, 16);
    drv->configure(queues[0]);
    dev = std::make_unique<VirtioEntropy>(clock, VirtioEntropy::Options{rate}, source());
    virtio::ActivationContext ctx{mem, queues, irq, 0};
    ASSERT_TRUE(dev->activate(ctx).ok());
  }
};

TEST_F(EntropyTest, IdentityAndGetrandomSource) {
  make(0);
  EXPECT_EQ(dev->device_type(), 4u);
  EXPECT_EQ(dev->device_features(), 0u);
  EXPECT_EQ(dev->queue_max_sizes().size(), 1u);
  EXPECT_EQ(dev->config_size(), 0u);
  std::vector<uint8_t> buf(64);
  EXPECT_TRUE(VirtioEntropy::getrandom_source()(buf).ok());
}

TEST_F(EntropyTest, FillsWritableBuffersAndSignals) {
  make(0);
  const Seg segs[] = {{4, false, {0xee, 0xee, 0xee, 0xee}}, {16, true}, {16, true}};
  uint16_t head = drv->add_and_publish(segs);
  dev->process_queue(0);
  ASSERT_EQ(drv->used_idx(), 1);
  EXPECT_EQ(drv->used(0).id, head);
  EXPECT_EQ(drv->used(0).len, 32u);
  auto b = drv->read_bytes(drv->seg_addr(1), 16);
  EXPECT_EQ(b[0], 1);
  EXPECT_EQ(b[15], 16);
  EXPECT_EQ(drv->read_bytes(drv->seg_addr(2), 1)[0], 17);
  EXPECT_EQ(drv->read_bytes(drv->seg_addr(0), 1)[0], 0xee);  // readable part untouched
  EXPECT_EQ(irq.used, 1);
  EXPECT_FALSE(dev->retry_after().has_value());
  EXPECT_EQ(dev->bytes_served(), 32u);
}

TEST_F(EntropyTest, RateLimitStopsAndAsksForARetry) {
  make(100);  // 100 bytes/s, 100-byte burst
  const Seg segs[] = {{64, true}};
  for (int i = 0; i < 3; ++i) drv->add_and_publish(segs);
  dev->process_queue(0);
  ASSERT_EQ(drv->used_idx(), 2);
  EXPECT_EQ(drv->used(0).len, 64u);
  EXPECT_EQ(drv->used(1).len, 36u);  // what was left in the bucket
  auto wait = dev->retry_after();
  ASSERT_TRUE(wait.has_value());
  EXPECT_GT(wait->count(), 0);
  EXPECT_LE(wait->count(), 10'000'000);  // one byte at 100 B/s
  dev->process_queue(0);                 // no time passed: still throttled, nothing served
  EXPECT_EQ(drv->used_idx(), 2);
  clock.mono += std::chrono::seconds(1);
  dev->process_queue(0);
  ASSERT_EQ(drv->used_idx(), 3);
  EXPECT_EQ(drv->used(2).len, 64u);
  EXPECT_FALSE(dev->retry_after().has_value());
}

TEST_F(EntropyTest, ThrottledWithEmptyRingNeedsNoRetry) {
  make(10);
  const Seg segs[] = {{10, true}};
  drv->add_and_publish(segs);
  dev->process_queue(0);
  EXPECT_EQ(drv->used(0).len, 10u);
  EXPECT_FALSE(dev->retry_after().has_value());
}

TEST_F(EntropyTest, SourceFailureCompletesWithZeroBytes) {
  make(0);
  source_fails = true;
  const Seg segs[] = {{8, true}};
  drv->add_and_publish(segs);
  dev->process_queue(0);
  ASSERT_EQ(drv->used_idx(), 1);
  EXPECT_EQ(drv->used(0).len, 0u);
}

TEST_F(EntropyTest, MalformedChainIsCompletedEmptyAndSignalled) {
  make(0);
  drv->set_desc(0, virtio::VirtqDesc{drv->alloc(8), 8, virtio::kDescFlagNext, 0});  // self loop
  drv->publish(0);
  dev->process_queue(0);
  ASSERT_EQ(drv->used_idx(), 1);
  EXPECT_EQ(drv->used(0).len, 0u);
  EXPECT_EQ(irq.used, 1);
}

TEST_F(EntropyTest, ResetDropsTheQueues) {
  make(0);
  dev->reset();
  const Seg segs[] = {{8, true}};
  drv->add_and_publish(segs);
  dev->process_queue(0);  // not active: ignored
  EXPECT_EQ(drv->used_idx(), 0);
}

TEST(EntropyOverMmio, GuestDriverReadsRandomBytes) {
  memory::GuestMemory mem;
  ASSERT_TRUE(mem.add_region(0, 0x100000, false).ok());
  FakeClock clock;
  auto dev = std::make_shared<VirtioEntropy>(clock, VirtioEntropy::Options{},
                                             [](std::span<uint8_t> out) -> Status {
                                               for (auto& b : out) b = 0x5a;
                                               return {};
                                             });
  RecordingIrqLine line;
  virtio::MmioTransport t(mem, dev, [&] { line.pulse(); });
  auto wr = [&](uint64_t off, uint32_t v) {
    uint8_t b[4];
    bus::store_le(b, v);
    t.write(off, b);
  };
  MockDriver drv(mem, 128);
  wr(0x70, 1);
  wr(0x70, 3);
  wr(0x24, 1);
  wr(0x20, 1);  // VERSION_1
  wr(0x70, 11);
  wr(0x30, 0);
  wr(0x38, 128);
  wr(0x80, static_cast<uint32_t>(drv.desc_addr()));
  wr(0x90, static_cast<uint32_t>(drv.avail_addr()));
  wr(0xa0, static_cast<uint32_t>(drv.used_addr()));
  wr(0x44, 1);
  wr(0x70, 15);
  ASSERT_TRUE(t.activated());
  const Seg segs[] = {{32, true}};
  drv.add_and_publish(segs);
  wr(0x50, 0);
  ASSERT_EQ(drv.used_idx(), 1);
  EXPECT_EQ(drv.used(0).len, 32u);
  EXPECT_EQ(drv.read_bytes(drv.seg_addr(0), 32), std::vector<uint8_t>(32, 0x5a));
  EXPECT_EQ(line.raises, 1);
  EXPECT_EQ(t.interrupt_status(), virtio::kInterruptUsedBuffer);
}

}  // namespace
}  // namespace qvm::vdev
