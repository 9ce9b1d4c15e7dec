// virtio-net multi-queue (virtio 1.2 §5.1.6.5.5, VIRTIO_NET_F_MQ) on socketpair backends, one per
// pair: queue layout, the control queue at 2N, VQ_PAIRS_SET driven like a guest, transmit and
// receive per pair, inactive pairs not read, reset back to one pair.
#include "net/fd_backend.hpp"
#include "net_test_util.hpp"

namespace qvm::net::testing {
namespace {

using vdev::VirtioNet;
using virtio::feature_bit;
namespace nd = vdev::net_dev;

constexpr size_t kPairs = 3;

struct MqTest : ::testing::Test {
  memory::GuestMemory mem;
  std::vector<virtio::Queue> queues;
  std::vector<std::unique_ptr<MockDriver>> drv;  // one per queue
  NetInterrupt irq;
  std::vector<UniqueFd> host;  // per pair
  std::shared_ptr<VirtioNet> dev;

  void SetUp() override {
    ASSERT_TRUE(mem.add_region(0, 16ull << 20, false).ok());
    std::vector<std::unique_ptr<Backend>> bes;
    for (size_t i = 0; i < kPairs; ++i) {
      int sv[2];
      ASSERT_EQ(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
      host.emplace_back(sv[1]);
      auto be = FdBackend::create(UniqueFd(sv[0]), {}, "test");
      ASSERT_TRUE(be.ok());
      bes.push_back(std::move(*be));
    }
    VirtioNet::Options o;
    o.mac = generate_mac("sys", "mq");
    auto d = VirtioNet::create(o, std::move(bes));
    ASSERT_TRUE(d.ok()) << d.error().message;
    dev = *d;
    dev->set_kick([this](uint16_t q) { dev->process_queue(q); });
    for (size_t q = 0; q < dev->queue_max_sizes().size(); ++q) {
      queues.emplace_back(dev->queue_max_sizes()[q]);
      drv.push_back(std::make_unique<MockDriver>(mem, 16, q << 20));
    }
  }
  void activate(bool mq = true) {
    for (size_t q = 0; q < queues.size(); ++q) drv[q]->configure(queues[q], true);
    uint64_t f = feature_bit(virtio::kFeatureVersion1) | feature_bit(nd::kMrgRxbuf) |
                 feature_bit(nd::kCtrlVq);
    if (mq) f |= feature_bit(nd::kMq);
    virtio::ActivationContext ctx{mem, queues, irq, f};
    ASSERT_TRUE(dev->activate(ctx).ok());
  }
  uint8_t pairs_set(uint16_t q, uint16_t n) {
    MockDriver& c = *drv[q];
    const Seg r[] = {{4, false, {4, 0, static_cast<uint8_t>(n), static_cast<uint8_t>(n >> 8)}},
                     {1, true, {0xee}}};
    c.add_and_publish(r, true);
    const uint64_t ack = c.seg_addr(1);
    dev->process_queue(q);
    return c.read_bytes(ack, 1)[0];
  }
  void post_rx(size_t pair) {
    const Seg b[] = {{2048, true}};
    drv[2 * pair]->add_and_publish(b, true);
    dev->process_queue(static_cast<uint16_t>(2 * pair));  // the guest's notify
  }
  void host_send(size_t pair, uint8_t seed) {
    auto v = with_hdr(VnetHdr{}, eth_frame(100, seed));
    ASSERT_EQ(::send(host[pair].get(), v.data(), v.size(), 0), static_cast<ssize_t>(v.size()));
  }
  void pump() {
    for (int i = 0; i < 4 && readable(dev->poll_fd(), 50); ++i) dev->on_ready();
  }
};

TEST_F(MqTest, LayoutAndConfig) {
  EXPECT_TRUE(dev->device_features() & feature_bit(nd::kMq));
  EXPECT_EQ(dev->queue_max_sizes().size(), 2 * kPairs + 1);
  EXPECT_EQ(dev->max_pairs(), kPairs);
  uint8_t c[12];
  dev->read_config(0, c);
  EXPECT_EQ(c[8] | (c[9] << 8), static_cast<int>(kPairs));  // max_virtqueue_pairs
}

TEST_F(MqTest, PairsSetEnablesReceiveOnMorePairs) {
  activate();
  EXPECT_EQ(dev->active_pairs(), 1);
  post_rx(0);
  post_rx(2);
  host_send(2, 7);  // steered to pair 3 while only pair 1 is active: waits in its queue
  host_send(0, 8);
  pump();
  EXPECT_EQ(drv[0]->used_idx(), 1);
  EXPECT_EQ(drv[4]->used_idx(), 0);
  const uint16_t ctrl = 2 * kPairs;
  EXPECT_EQ(pairs_set(ctrl, 0), 1);                                  // VIRTIO_NET_ERR
  EXPECT_EQ(pairs_set(ctrl, static_cast<uint16_t>(kPairs + 1)), 1);  // beyond the maximum
  EXPECT_EQ(pairs_set(ctrl, 3), 0);
  EXPECT_EQ(dev->active_pairs(), 3);
  post_rx(2);  // the driver's notify after VQ_PAIRS_SET
  pump();
  EXPECT_GE(drv[4]->used_idx(), 1);
  EXPECT_EQ(dev->stats().rx_frames, 2u);
  // Back to one pair: pair 3 is no longer read.
  EXPECT_EQ(pairs_set(ctrl, 1), 0);
  host_send(2, 9);
  pump();
  EXPECT_EQ(dev->stats().rx_frames, 2u);
}

TEST_F(MqTest, TransmitOnEachPairGoesToItsBackend) {
  activate();
  ASSERT_EQ(pairs_set(2 * kPairs, 3), 0);
  for (size_t p = 0; p < kPairs; ++p) {
    auto f = eth_frame(60, static_cast<uint8_t>(p));
    const Seg c[] = {{12 + 60, false, with_hdr(VnetHdr{}, f)}};
    drv[2 * p + 1]->add_and_publish(c, true);
    dev->process_queue(static_cast<uint16_t>(2 * p + 1));
    std::vector<uint8_t> b(200);
    ASSERT_TRUE(readable(host[p].get(), 1000));
    const ssize_t n = ::recv(host[p].get(), b.data(), b.size(), 0);
    ASSERT_EQ(n, 72);
    b.resize(72);
    EXPECT_EQ(b, with_hdr(VnetHdr{}, f));
  }
}

TEST_F(MqTest, WithoutMqOnePairAndControlQueueTwo) {
  activate(false);
  // Queue 2 is the control queue now: VQ_PAIRS_SET is refused (MQ not negotiated), but the
  // request is answered there.
  EXPECT_EQ(pairs_set(2, 2), 1);
  EXPECT_EQ(dev->active_pairs(), 1);
  // Transmit on "pair 2" (queue 3) is not served.
  const Seg c[] = {{12 + 60, false, with_hdr(VnetHdr{}, eth_frame(60, 1))}};
  drv[3]->add_and_publish(c, true);
  dev->process_queue(3);
  EXPECT_EQ(drv[3]->used_idx(), 0);
}

TEST_F(MqTest, ResetReturnsToOnePair) {
  activate();
  ASSERT_EQ(pairs_set(2 * kPairs, 2), 0);
  EXPECT_EQ(dev->active_pairs(), 2);
  dev->reset();
  EXPECT_EQ(dev->active_pairs(), 1);
}

}  // namespace
}  // namespace qvm::net::testing
