// virtio-net (virtio 1.2 §5.1) on MockDriver queues over a socketpair backend: features, config,
// transmit (batched, malformed chains), receive (mergeable, legacy header, no buffers), link.
#include <fcntl.h>

#include <map>

#include "net/fd_backend.hpp"
#include "net_test_util.hpp"
#include "vdev/virtio_net/virtio_net_setup.hpp"

namespace qvm::net::testing {
namespace {

using vdev::VirtioNet;
using virtio::feature_bit;
namespace nd = vdev::net_dev;

constexpr Offloads kAll{true, true, true, true, true};

struct NetTest : ::testing::Test {
  memory::GuestMemory mem;
  std::vector<virtio::Queue> queues{virtio::Queue(VirtioNet::kQueueSize),
                                    virtio::Queue(VirtioNet::kQueueSize)};
  std::unique_ptr<MockDriver> rx, tx;
  NetInterrupt irq;
  UniqueFd host;  // the other end of the backend's socketpair
  std::shared_ptr<VirtioNet> dev;

  void make(Offloads o = kAll, std::optional<uint64_t> peerfeats = std::nullopt) {
    ASSERT_TRUE(mem.add_region(0, 4ull << 20, false).ok());
    rx = std::make_unique<MockDriver>(mem, 16, 0);
    tx = std::make_unique<MockDriver>(mem, 16, 2ull << 20);
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
    host.reset(sv[1]);
    int big = 1 << 20;
    ASSERT_EQ(::setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &big, sizeof big), 0);
    ASSERT_EQ(::setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &big, sizeof big), 0);
    auto be = FdBackend::create(UniqueFd(sv[0]), o, "test");
    ASSERT_TRUE(be.ok());
    VirtioNet::Options opts;
    opts.mac = generate_mac("sys", "net0");
    opts.mtu = 1500;
    opts.peerfeats = peerfeats;
    auto d = VirtioNet::create(opts, std::move(*be));
    ASSERT_TRUE(d.ok()) << d.error().message;
    dev = *d;
    dev->set_kick([this](uint16_t q) { dev->process_queue(q); });
  }
  void activate(uint64_t features) {
    rx->configure(queues[0], true);
    tx->configure(queues[1], true);
    virtio::ActivationContext ctx{mem, queues, irq, features};
    ASSERT_TRUE(dev->activate(ctx).ok());
  }
  static uint64_t modern() {
    return feature_bit(virtio::kFeatureVersion1) | feature_bit(virtio::kFeatureEventIdx) |
           feature_bit(nd::kMrgRxbuf) | feature_bit(nd::kStatus) | feature_bit(nd::kMac);
  }
  void host_send(const std::vector<uint8_t>& v) {
    ASSERT_EQ(::send(host.get(), v.data(), v.size(), 0), static_cast<ssize_t>(v.size()));
  }
  std::vector<uint8_t> host_recv() {
    std::vector<uint8_t> b(kVnetHdrLen + kMaxFrame);
    if (!readable(host.get(), 1000)) return {};
    ssize_t n = ::recv(host.get(), b.data(), b.size(), MSG_DONTWAIT);
    b.resize(n > 0 ? static_cast<size_t>(n) : 0);
    return b;
  }
  // The event loop's part: the device's fd is readable -> on_ready().
  void loop_once() {
    if (readable(dev->poll_fd(), 200)) dev->on_ready();
  }
};

TEST_F(NetTest, IdentityFeaturesAndConfig) {
  make();
  EXPECT_EQ(dev->device_type(), 1u);
  const uint64_t f = dev->device_features();
  for (uint32_t b : {nd::kMac, nd::kStatus, nd::kMrgRxbuf, nd::kMtu, nd::kCsum, nd::kGuestCsum,
                     nd::kHostTso4, nd::kHostTso6, nd::kGuestTso4, nd::kGuestTso6})
    EXPECT_TRUE(f & feature_bit(b)) << b;
  EXPECT_TRUE(f & feature_bit(nd::kCtrlVq));  // control queue: virtio_net_ctrl_test.cpp
  EXPECT_FALSE(f & feature_bit(nd::kMq));
  EXPECT_EQ(dev->queue_max_sizes().size(), 3u);
  uint8_t c[12];
  dev->read_config(0, c);
  const Mac m = generate_mac("sys", "net0");
  EXPECT_EQ(std::memcmp(c, m.data(), 6), 0);
  EXPECT_EQ(m[0] & 3, 2);  // locally administered unicast
  EXPECT_EQ(c[6], nd::kStatusLinkUp);
  EXPECT_EQ(c[10] | (c[11] << 8), 1500);
  EXPECT_EQ(generate_mac("sys", "net0"), m);  // stable
  EXPECT_NE(generate_mac("sys", "net1"), m);
}

TEST(NetFeatures, PeerfeatsMasksOffloadsAndDependencies) {
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
  UniqueFd keep(sv[1]);
  VirtioNet::Options o;
  // 0x19c3 (QNX 7 io-pkt) without CSUM: the HOST_* TSO bits must go too.
  o.peerfeats = 0x19c3 & ~feature_bit(nd::kCsum);
  auto be = FdBackend::create(UniqueFd(sv[0]), kAll, "t");
  ASSERT_TRUE(be.ok());
  auto d = VirtioNet::create(o, std::move(*be));
  ASSERT_TRUE(d.ok());
  const uint64_t f = (*d)->device_features();
  EXPECT_FALSE(f & feature_bit(nd::kCsum));
  EXPECT_FALSE(f & feature_bit(nd::kHostTso4));
  EXPECT_TRUE(f & feature_bit(nd::kGuestCsum));
  EXPECT_TRUE(f & feature_bit(nd::kGuestTso4));
  EXPECT_FALSE(f & feature_bit(nd::kGuestEcn));  // not in 0x19c3
  o.peerfeats = 0x8000;                          // outside 0x7fc3
  int sv2[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv2), 0);
  UniqueFd keep2(sv2[1]);
  auto be2 = FdBackend::create(UniqueFd(sv2[0]), kAll, "t");
  ASSERT_TRUE(be2.ok());
  EXPECT_FALSE(VirtioNet::create(o, std::move(*be2)).ok());
}

TEST_F(NetTest, TransmitBatchOneInterrupt) {
  make();
  activate(modern());
  VnetHdr h{};
  auto f1 = eth_frame(60, 1), f2 = eth_frame(1514, 2);
  auto b1 = with_hdr(h, f1);
  // Header and frame in separate descriptors, and the frame split too.
  const Seg c1[] = {{12, false, std::vector<uint8_t>(b1.begin(), b1.begin() + 12)},
                    {30, false, std::vector<uint8_t>(b1.begin() + 12, b1.begin() + 42)},
                    {30, false, std::vector<uint8_t>(b1.begin() + 42, b1.end())}};
  const Seg c2[] = {{static_cast<uint32_t>(12 + f2.size()), false, with_hdr(h, f2)}};
  tx->add_and_publish(c1);
  tx->add_and_publish(c2, true);
  dev->process_queue(VirtioNet::kTxQueue);
  EXPECT_EQ(host_recv(), b1);
  EXPECT_EQ(host_recv(), with_hdr(h, f2));
  EXPECT_EQ(tx->used_idx(), 2);
  EXPECT_EQ(tx->used(0).len, 0u);
  EXPECT_EQ(irq.used[1], 1);
  EXPECT_EQ(dev->stats().tx_frames, 2u);
}

TEST_F(NetTest, MalformedTransmitFailsThatPacketOnly) {
  make();
  // TSO offered but the guest negotiates only CSUM.
  activate(modern() | feature_bit(nd::kCsum));
  VnetHdr gso{};
  gso.gso_type = kGsoTcpV4;
  gso.gso_size = 1448;
  VnetHdr csum_bad{};
  csum_bad.flags = kHdrFlagNeedsCsum;
  csum_bad.csum_start = 50;
  csum_bad.csum_offset = 16;  // 50 + 16 + 2 > 60
  auto f = eth_frame(60, 7);
  const Seg short_chain[] = {{8, false, {}}};
  const Seg only_hdr[] = {{12, false, {}}};
  const Seg gso_chain[] = {{72, false, with_hdr(gso, f)}};
  const Seg bad_csum[] = {{72, false, with_hdr(csum_bad, f)}};
  const Seg too_big[] = {{12 + kMaxFrame + 1, false, {}}};
  VnetHdr ok{};
  const Seg good[] = {{72, false, with_hdr(ok, f)}};
  for (auto* c : {short_chain, only_hdr}) tx->add_and_publish(std::span<const Seg>(c, 1));
  tx->add_and_publish(gso_chain);
  tx->add_and_publish(bad_csum);
  tx->add_and_publish(too_big);
  tx->add_and_publish(good);
  dev->process_queue(VirtioNet::kTxQueue);
  EXPECT_EQ(host_recv(), with_hdr(ok, f));
  EXPECT_FALSE(readable(host.get(), 0));
  EXPECT_EQ(tx->used_idx(), 6);
  auto s = dev->stats();
  EXPECT_EQ(s.tx_malformed, 5u);
  EXPECT_EQ(s.tx_frames, 1u);
}

TEST_F(NetTest, ReceiveMergeableDirectIntoGuestBuffers) {
  make();
  activate(modern());
  uint64_t addr[4];
  for (int i = 0; i < 4; ++i) {
    const Seg b[] = {{1526, true}};
    rx->add_chain(b);
    addr[i] = rx->seg_addr(0);
    rx->publish(static_cast<uint16_t>(i));
  }
  dev->process_queue(VirtioNet::kRxQueue);  // the guest's notify: nothing to read yet
  VnetHdr h{};
  h.flags = kHdrFlagDataValid;
  auto f = eth_frame(3000, 9);
  host_send(with_hdr(h, f));
  loop_once();
  ASSERT_EQ(rx->used_idx(), 2);
  EXPECT_EQ(rx->used(0).len, 1526u);
  EXPECT_EQ(rx->used(1).len, 12u + 3000u - 1526u);
  auto hdr = rx->read_bytes(addr[0], 12);
  EXPECT_EQ(hdr[10] | (hdr[11] << 8), 2);  // num_buffers
  EXPECT_EQ(hdr[0], 0);                    // DATA_VALID needs GUEST_CSUM
  auto d0 = rx->read_bytes(addr[0] + 12, 1514), d1 = rx->read_bytes(addr[1], 3000 - 1514);
  d0.insert(d0.end(), d1.begin(), d1.end());
  EXPECT_EQ(d0, f);
  EXPECT_EQ(irq.used[0], 1);
  // A second, small frame uses the next buffer.
  auto g = eth_frame(100, 4);
  host_send(with_hdr(VnetHdr{}, g));
  loop_once();
  ASSERT_EQ(rx->used_idx(), 3);
  EXPECT_EQ(rx->used(2).len, 112u);
  EXPECT_EQ(rx->read_bytes(addr[2] + 12, 100), g);
}

// A TSO guest posts many small buffers (the largest frame takes ~33): frames of any size go
// straight into them (no bounce), also when a chain's header is its own descriptor, and over
// many frames (the device's cached views of the posted chains stay right as chains are used).
TEST_F(NetTest, ReceiveWithGuestTsoUsesManySmallBuffersDirectly) {
  make();
  rx = std::make_unique<MockDriver>(mem, 128, 0);
  activate(modern() | feature_bit(nd::kGuestCsum) | feature_bit(nd::kGuestTso4));
  std::map<uint16_t, std::vector<std::pair<uint64_t, uint32_t>>> segs;  // head -> buffers
  int posted = 0;
  auto post = [&](int n) {
    for (int i = 0; i < n; ++i, ++posted) {
      const bool split = posted % 3 == 0;
      const Seg one[] = {{2048, true}};
      const Seg two[] = {{12, true}, {2036, true}};
      uint16_t head = split ? rx->add_chain(two) : rx->add_chain(one);
      segs[head] = {{rx->seg_addr(0), split ? 12u : 2048u}};
      if (split) segs[head].push_back({rx->seg_addr(1), 2036u});
      rx->publish(head);
    }
  };
  auto chain_bytes = [&](uint16_t head, uint32_t len) {
    std::vector<uint8_t> out;
    for (auto [a, n] : segs[head]) {
      auto b = rx->read_bytes(a, std::min(n, len - static_cast<uint32_t>(out.size())));
      out.insert(out.end(), b.begin(), b.end());
    }
    return out;
  };
  post(60);  // 80 descriptors of the 128: the mock driver does not recycle them
  dev->process_queue(VirtioNet::kRxQueue);
  std::vector<std::vector<uint8_t>> sent;
  for (int k = 0; k < 6; ++k) {
    sent.push_back(eth_frame(k % 2 ? 20000 : 60 + static_cast<size_t>(k), static_cast<uint8_t>(k)));
    host_send(with_hdr(VnetHdr{}, sent.back()));
    loop_once();
    if (k == 2) post(20);  // more buffers while the device holds cached views of the others
  }
  EXPECT_EQ(dev->stats().rx_frames, 6u);
  EXPECT_EQ(dev->stats().rx_bounced, 0u);
  // Reassemble each frame from the used ring (num_buffers entries per frame).
  uint16_t u = 0;
  for (const auto& f : sent) {
    const auto e0 = rx->used(u);
    auto hdr = chain_bytes(static_cast<uint16_t>(e0.id), 12);
    const int nb = hdr[10] | (hdr[11] << 8);
    std::vector<uint8_t> got;
    for (int b = 0; b < nb; ++b) {
      const auto e = rx->used(static_cast<uint16_t>(u + b));
      auto bytes = chain_bytes(static_cast<uint16_t>(e.id), e.len);
      got.insert(got.end(), bytes.begin() + (b == 0 ? 12 : 0), bytes.end());
    }
    u = static_cast<uint16_t>(u + nb);
    EXPECT_EQ(got, f);
  }
  EXPECT_EQ(rx->used_idx(), u);
}

TEST_F(NetTest, ReceiveWaitsForBuffersAndStopsReading) {
  make();
  activate(modern());
  auto f = eth_frame(200, 5);
  host_send(with_hdr(VnetHdr{}, f));
  loop_once();  // readable, but no buffers: the device stops reading
  EXPECT_EQ(rx->used_idx(), 0);
  EXPECT_FALSE(readable(dev->poll_fd(), 20));  // no busy loop on a level-triggered poll
  // A SIGUSR1 report says which side waits.
  EXPECT_NE(dev->status_text().find("; pair 1: rx paused, 0 buffers held (0 B)"), std::string::npos)
      << dev->status_text();
  const Seg b[] = {{2048, true}};
  rx->add_chain(b);
  const uint64_t a = rx->seg_addr(0);
  rx->publish(0);
  dev->process_queue(VirtioNet::kRxQueue);  // the guest notifies receiveq1
  ASSERT_EQ(rx->used_idx(), 1);
  EXPECT_EQ(rx->read_bytes(a + 12, 200), f);
  EXPECT_EQ(dev->status_text(),
            "link up, rx 1 frames (0 bounced, 0 dropped), tx 0 frames (0 dropped, 0 malformed), 1 "
            "interrupts; pair 1: rx paused, 0 buffers held (0 B)");
}

TEST_F(NetTest, ReceiveBouncesWhenFewBuffersArePosted) {
  make();
  activate(modern() | feature_bit(nd::kGuestCsum) | feature_bit(nd::kGuestTso4));
  // Largest frame is 64 KiB; only two small buffers: the frame is read into the bounce buffer.
  for (int i = 0; i < 2; ++i) {
    const Seg b[] = {{1024, true}};
    rx->add_and_publish(b);
  }
  auto f = eth_frame(1500, 3);
  host_send(with_hdr(VnetHdr{}, f));
  loop_once();
  ASSERT_EQ(rx->used_idx(), 2);
  EXPECT_EQ(dev->stats().rx_bounced, 1u);
  // 4000 bytes do not fit in what is left: held until the guest posts more.
  auto g = eth_frame(4000, 8);
  host_send(with_hdr(VnetHdr{}, g));
  loop_once();
  EXPECT_EQ(rx->used_idx(), 2);
  for (int i = 0; i < 4; ++i) {
    const Seg b[] = {{1024, true}};
    rx->add_and_publish(b);
  }
  dev->process_queue(VirtioNet::kRxQueue);
  EXPECT_EQ(rx->used_idx(), 2 + 4);
}

TEST_F(NetTest, LegacyHeaderWithoutMergeable) {
  make();
  activate(feature_bit(nd::kMac));  // legacy driver: 10-byte header, one chain per frame
  const Seg b[] = {{1600, true}};
  rx->add_chain(b);
  const uint64_t a = rx->seg_addr(0);
  rx->publish(0);
  dev->process_queue(VirtioNet::kRxQueue);
  auto f = eth_frame(64, 2);
  host_send(with_hdr(VnetHdr{}, f));
  loop_once();
  ASSERT_EQ(rx->used_idx(), 1);
  EXPECT_EQ(rx->used(0).len, 74u);
  EXPECT_EQ(rx->read_bytes(a + 10, 64), f);
  // Transmit with a 10-byte header reaches the backend with 12.
  const Seg t[] = {{74, false, with_hdr(VnetHdr{}, f, 10)}};
  tx->add_and_publish(t);
  dev->process_queue(VirtioNet::kTxQueue);
  EXPECT_EQ(host_recv(), with_hdr(VnetHdr{}, f));
}

TEST_F(NetTest, TinyReceiveBuffersAreReturnedUnused) {
  make();
  activate(modern());
  const Seg tiny[] = {{4, true}};
  const Seg ok[] = {{1600, true}};
  rx->add_and_publish(tiny);
  rx->add_and_publish(ok);
  auto f = eth_frame(64, 2);
  host_send(with_hdr(VnetHdr{}, f));
  loop_once();
  ASSERT_EQ(rx->used_idx(), 2);
  EXPECT_EQ(rx->used(0).len, 0u);
  EXPECT_EQ(rx->used(1).len, 76u);
  EXPECT_EQ(dev->stats().rx_bad_buffers, 1u);
}

TEST_F(NetTest, LinkDownWhenTheOtherEndCloses) {
  make();
  activate(modern());
  EXPECT_TRUE(dev->link_up());
  host.reset();
  loop_once();  // hang-up seen while reading is on: the receive pass finds no buffers
  loop_once();  // reading off, hang-up alone: link down
  EXPECT_FALSE(dev->link_up());
  EXPECT_EQ(irq.config, 1);
  uint8_t c[8];
  dev->read_config(0, c);
  EXPECT_EQ(c[6], 0);
  // Frames sent while down are dropped and counted; the chain still completes.
  const Seg t[] = {{72, false, with_hdr(VnetHdr{}, eth_frame(60, 1))}};
  tx->add_and_publish(t);
  dev->process_queue(VirtioNet::kTxQueue);
  EXPECT_EQ(tx->used_idx(), 1);
  EXPECT_EQ(dev->stats().tx_dropped, 1u);
}

TEST_F(NetTest, ResetDropsStateAndStopsReading) {
  make();
  activate(modern());
  const Seg b[] = {{1600, true}};
  rx->add_and_publish(b);
  dev->process_queue(VirtioNet::kRxQueue);
  dev->reset();
  host_send(with_hdr(VnetHdr{}, eth_frame(64, 1)));
  EXPECT_FALSE(readable(dev->poll_fd(), 20));
  for (auto& q : queues) q.reset();
  rx = std::make_unique<MockDriver>(mem, 16, 0);
  activate(modern());
  rx->add_and_publish(b);
  dev->process_queue(VirtioNet::kRxQueue);
  EXPECT_EQ(rx->used_idx(), 1);
}

TEST(NetSetup, BackendSelectionAndErrors) {
  vdev::NetSetup s;
  s.system = "a";
  auto none = vdev::open_virtio_net(s);
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE((*none)->link_up());
  s.peer = "/run/qvm/b/net0";
  auto r = vdev::open_virtio_net(s);  // no name
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("needs `name`"), std::string::npos);
  s.mac = "01:00:00:00:00:01";
  s.vdev_name = "net0";
  EXPECT_FALSE(vdev::open_virtio_net(s).ok());  // multicast
  s.mac = "zz";
  EXPECT_FALSE(vdev::open_virtio_net(s).ok());
  s.mac.reset();
  s.tapdev = "x";
  EXPECT_FALSE(vdev::open_virtio_net(s).ok());  // both
}

TEST(NetSetup, IoeventfdChoosesWhichQueueNotificationsExit) {
  vdev::NetSetup s;
  s.system = "a";
  struct Case {
    const char* value;
    bool rx0, tx1;
  };
  // auto = tx: receive notifications on the vCPU thread, transmit through an ioeventfd.
  for (const Case& c : {Case{"auto", false, true}, Case{"tx", false, true}, Case{"on", true, true},
                        Case{"off", false, false}}) {
    s.ioeventfd = c.value;
    auto d = vdev::open_virtio_net(s);
    ASSERT_TRUE(d.ok()) << c.value;
    EXPECT_EQ((*d)->queue_ioeventfd(0), c.rx0) << c.value;
    EXPECT_EQ((*d)->queue_ioeventfd(1), c.tx1) << c.value;
    EXPECT_EQ((*d)->wants_ioeventfd(), c.tx1) << c.value;
  }
  s.ioeventfd = "rx";
  auto bad = vdev::open_virtio_net(s);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("want on, off, tx or auto"), std::string::npos);
}

}  // namespace
}  // namespace qvm::net::testing
