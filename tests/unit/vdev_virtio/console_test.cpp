// virtio-console (virtio 1.2 §5.3): both directions, backpressure, size and emergency write.
#include <gtest/gtest.h>

#include <string>

#include "blk_test_util.hpp"
#include "vdev/virtio_console/virtio_console.hpp"
#include "virtio/virtio_defs.hpp"

namespace qvm::vdev::testing {
namespace {

struct ConsoleInterrupt final : public virtio::VirtioInterrupt {
  int used[2] = {0, 0};
  int config = 0;
  void signal_used(uint16_t q) override { ++used[q & 1]; }
  void signal_config() override { ++config; }
};

struct ConsoleTest : ::testing::Test {
  memory::GuestMemory mem;
  std::vector<virtio::Queue> queues{virtio::Queue(VirtioConsole::kQueueSize),
                                    virtio::Queue(VirtioConsole::kQueueSize)};
  std::unique_ptr<MockDriver> rx, tx;
  ConsoleInterrupt irq;
  std::string out;
  int kicks = 0;
  int spaces = 0;
  std::unique_ptr<VirtioConsole> dev;

  void SetUp() override {
    ASSERT_TRUE(mem.add_region(0, 4ull << 20, false).ok());
    rx = std::make_unique<MockDriver>(mem, 16, 0);
    tx = std::make_unique<MockDriver>(mem, 16, 2ull << 20);
    rx->configure(queues[0]);
    tx->configure(queues[1]);
    VirtioConsole::Options o;
    o.max_buffered = 64;
    VirtioConsole::Hooks hk;
    hk.output = [this](std::span<const uint8_t> b) { out.append(b.begin(), b.end()); };
    hk.kick = [this] {
      ++kicks;
      dev->process_queue(VirtioConsole::kReceiveQueue);
    };
    hk.rx_space = [this] { ++spaces; };
    dev = std::make_unique<VirtioConsole>(o, hk);
    virtio::ActivationContext ctx{mem, queues, irq, 0};
    ASSERT_TRUE(dev->activate(ctx).ok());
  }
  size_t send(const std::string& s) {
    return dev->receive(std::span<const uint8_t>(
        reinterpret_cast<const uint8_t*>(s.data()),  // SAFETY: bytes of a string
        s.size()));
  }
  std::string rx_bytes(uint64_t addr, size_t n) const {
    auto v = rx->read_bytes(addr, n);
    return std::string(v.begin(), v.end());
  }
};

TEST_F(ConsoleTest, IdentityAndConfig) {
  EXPECT_EQ(dev->device_type(), 3u);
  EXPECT_TRUE(dev->device_features() & virtio::feature_bit(console::kFeatureSize));
  EXPECT_FALSE(dev->device_features() & virtio::feature_bit(console::kFeatureMultiport));
  EXPECT_EQ(dev->queue_max_sizes().size(), 2u);
  uint8_t c[4];
  dev->read_config(0, c);
  EXPECT_EQ(c[0] | (c[1] << 8), 80);
  EXPECT_EQ(c[2] | (c[3] << 8), 25);
  dev->resize(132, 43);
  dev->read_config(0, c);
  EXPECT_EQ(c[0] | (c[1] << 8), 132);
  EXPECT_EQ(c[2] | (c[3] << 8), 43);
  EXPECT_EQ(dev->config_generation(), 1u);
  EXPECT_EQ(irq.config, 1);
  dev->resize(132, 43);  // unchanged: no notification
  EXPECT_EQ(irq.config, 1);
}

TEST_F(ConsoleTest, EmergencyWrite) {
  const uint8_t w[4] = {'!', 0, 0, 0};
  dev->write_config(8, w);
  dev->write_config(0, w);  // cols: read-only
  EXPECT_EQ(out, "!");
}

TEST_F(ConsoleTest, GuestToHost) {
  const Seg a[] = {{6, false, {'h', 'e', 'l', 'l', 'o', ' '}},
                   {5, false, {'w', 'o', 'r', 'l', 'd'}}};
  const Seg b[] = {{1, false, {'\n'}}};
  auto ha = tx->add_and_publish(a);
  tx->add_and_publish(b);
  dev->process_queue(VirtioConsole::kTransmitQueue);
  EXPECT_EQ(out, "hello world\n");
  ASSERT_EQ(tx->used_idx(), 2);
  EXPECT_EQ(tx->used(0).id, ha);
  EXPECT_EQ(tx->used(0).len, 0u);
  EXPECT_EQ(irq.used[1], 1);
}

TEST_F(ConsoleTest, HostToGuestFillsAvailableBuffers) {
  const Seg buf[] = {{8, true}};
  rx->add_chain(buf);
  const uint64_t a0 = rx->seg_addr(0);
  rx->publish(0);
  EXPECT_EQ(send("abc"), 3u);
  EXPECT_EQ(kicks, 1);
  ASSERT_EQ(rx->used_idx(), 1);
  EXPECT_EQ(rx->used(0).len, 3u);
  EXPECT_EQ(rx_bytes(a0, 3), "abc");
  EXPECT_EQ(irq.used[0], 1);
  // No buffer available: input waits, then lands when the guest adds buffers (and notifies).
  EXPECT_EQ(send("0123456789"), 10u);
  EXPECT_EQ(dev->buffered(), 10u);
  const Seg small[] = {{4, true}};
  uint16_t h1 = rx->add_chain(small);
  uint64_t a1 = rx->seg_addr(0);
  uint16_t h2 = rx->add_chain(buf);
  uint64_t a2 = rx->seg_addr(0);
  rx->publish(h1);
  rx->publish(h2);
  dev->process_queue(VirtioConsole::kReceiveQueue);
  ASSERT_EQ(rx->used_idx(), 3);
  EXPECT_EQ(rx->used(1).len, 4u);
  EXPECT_EQ(rx->used(2).len, 6u);
  EXPECT_EQ(rx_bytes(a1, 4), "0123");
  EXPECT_EQ(rx_bytes(a2, 6), "456789");
  EXPECT_EQ(dev->buffered(), 0u);
}

TEST_F(ConsoleTest, BackpressureAndRxSpace) {
  std::string big(100, 'x');
  EXPECT_EQ(send(big), 64u);  // the limit
  EXPECT_EQ(send("y"), 0u);
  EXPECT_EQ(spaces, 0);
  const Seg buf[] = {{16, true}};
  rx->add_and_publish(buf);
  dev->process_queue(VirtioConsole::kReceiveQueue);
  EXPECT_EQ(dev->buffered(), 48u);
  EXPECT_EQ(spaces, 1);  // room again: the machine resumes reading its input
  EXPECT_EQ(send("y"), 1u);
}

TEST_F(ConsoleTest, ReceiveBufferWithoutWritableBytes) {
  const Seg ro[] = {{8, false}};
  rx->add_and_publish(ro);
  EXPECT_EQ(send("z"), 1u);
  ASSERT_EQ(rx->used_idx(), 1);
  EXPECT_EQ(rx->used(0).len, 0u);
  EXPECT_EQ(dev->buffered(), 1u);  // still waiting for a real buffer
}

TEST_F(ConsoleTest, ResetKeepsInputAndIgnoresQueues) {
  EXPECT_EQ(send("keep"), 4u);
  dev->reset();
  dev->process_queue(0);
  dev->process_queue(1);
  dev->resize(100, 30);  // no interrupt after reset
  EXPECT_EQ(irq.config, 0);
  EXPECT_EQ(dev->buffered(), 4u);
}

}  // namespace
}  // namespace qvm::vdev::testing
