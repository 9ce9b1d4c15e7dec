// virtio-net control queue (virtio 1.2 §5.1.6.5) driven like a guest driver: requests as chains
// (class, command, data readable; one ack byte writable), and the receive filter they set
// (§5.1.6.5.1, §5.1.6.5.2) applied to frames from a socketpair backend.
#include "net/fd_backend.hpp"
#include "net_test_util.hpp"

namespace qvm::net::testing {
namespace {

using vdev::RxFilter;
using vdev::VirtioNet;
using virtio::feature_bit;
namespace nd = vdev::net_dev;

constexpr uint8_t kOk = 0, kErr = 1;

struct CtrlTest : ::testing::Test {
  memory::GuestMemory mem;
  std::vector<virtio::Queue> queues{virtio::Queue(VirtioNet::kQueueSize),
                                    virtio::Queue(VirtioNet::kQueueSize),
                                    virtio::Queue(VirtioNet::kCtrlQueueSize)};
  std::unique_ptr<MockDriver> rx, tx, ctrl;
  NetInterrupt irq;
  UniqueFd host;
  std::shared_ptr<VirtioNet> dev;
  Mac own = generate_mac("sys", "net0");

  void SetUp() override {
    ASSERT_TRUE(mem.add_region(0, 4ull << 20, false).ok());
    rx = std::make_unique<MockDriver>(mem, 16, 0);
    tx = std::make_unique<MockDriver>(mem, 16, 1ull << 20);
    ctrl = std::make_unique<MockDriver>(mem, 16, 2ull << 20);
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
    host.reset(sv[1]);
    auto be = FdBackend::create(UniqueFd(sv[0]), {true, true, true, false, false}, "test");
    ASSERT_TRUE(be.ok());
    VirtioNet::Options o;
    o.mac = own;
    auto d = VirtioNet::create(o, std::move(*be));
    ASSERT_TRUE(d.ok());
    dev = *d;
    dev->set_kick([this](uint16_t q) { dev->process_queue(q); });
  }
  void activate(uint64_t extra = feature_bit(nd::kCtrlRx) | feature_bit(nd::kCtrlRxExtra) |
                                 feature_bit(nd::kCtrlMacAddr)) {
    rx->configure(queues[0], true);
    tx->configure(queues[1], true);
    ctrl->configure(queues[2], true);
    const uint64_t f = feature_bit(virtio::kFeatureVersion1) | feature_bit(nd::kMrgRxbuf) |
                       feature_bit(nd::kMac) | feature_bit(nd::kCtrlVq) | extra;
    virtio::ActivationContext ctx{mem, queues, irq, f};
    ASSERT_TRUE(dev->activate(ctx).ok());
  }
  // One request; returns the ack byte the device wrote (0xee if none).
  uint8_t request(uint8_t cls, uint8_t cmd, std::vector<uint8_t> data, bool split = false) {
    std::vector<uint8_t> head = {cls, cmd};
    std::vector<Seg> segs;
    if (split) {  // as Linux sends it: header, data and ack in separate descriptors
      segs.push_back({2, false, head});
      if (!data.empty()) segs.push_back({static_cast<uint32_t>(data.size()), false, data});
    } else {
      head.insert(head.end(), data.begin(), data.end());
      segs.push_back({static_cast<uint32_t>(head.size()), false, head});
    }
    segs.push_back({1, true, {0xee}});
    const uint16_t before = ctrl->used_idx();
    ctrl->add_and_publish(segs, true);
    const uint64_t ack_addr = ctrl->seg_addr(segs.size() - 1);
    dev->process_queue(VirtioNet::kCtrlQueue);
    if (ctrl->used_idx() != before + 1) return 0xee;
    EXPECT_EQ(ctrl->used(before).len, 1u);
    return ctrl->read_bytes(ack_addr, 1)[0];
  }
  static std::vector<uint8_t> table(std::vector<Mac> uni, std::vector<Mac> multi) {
    std::vector<uint8_t> d;
    for (auto* t : {&uni, &multi}) {
      const uint32_t n = static_cast<uint32_t>(t->size());
      for (int i = 0; i < 4; ++i) d.push_back(static_cast<uint8_t>(n >> (8 * i)));
      for (const auto& m : *t) d.insert(d.end(), m.begin(), m.end());
    }
    return d;
  }
  // Sends a frame to `dst` from the host; true if the guest received it.
  bool delivered(const Mac& dst) {
    for (int i = 0; i < 2; ++i) {
      const Seg b[] = {{2048, true}};
      rx->add_and_publish(b, true);
    }
    const uint16_t before = rx->used_idx();
    auto f = eth_frame(64, 1);
    std::memcpy(f.data(), dst.data(), 6);
    auto v = with_hdr(VnetHdr{}, f);
    EXPECT_EQ(::send(host.get(), v.data(), v.size(), 0), static_cast<ssize_t>(v.size()));
    if (readable(dev->poll_fd(), 200)) dev->on_ready();
    return rx->used_idx() != before;
  }
};

const Mac kBcast = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
const Mac kOther = {0x02, 0, 0, 0, 0, 9};
const Mac kMcast = {0x01, 0, 0x5e, 0, 0, 1};
const Mac kMcast2 = {0x33, 0x33, 0, 0, 0, 1};

TEST_F(CtrlTest, PromiscuousUntilTheDriverConfiguresFiltering) {
  activate();
  EXPECT_TRUE(delivered(kOther));
  EXPECT_EQ(request(0, 0, {0}), kOk);  // PROMISC off
  EXPECT_TRUE(delivered(own));
  EXPECT_TRUE(delivered(kBcast));
  EXPECT_FALSE(delivered(kOther));
  EXPECT_FALSE(delivered(kMcast));
  EXPECT_EQ(request(0, 1, {1}, true), kOk);  // ALLMULTI on
  EXPECT_TRUE(delivered(kMcast));
  EXPECT_EQ(dev->stats().rx_filtered, 2u);
  EXPECT_EQ(dev->stats().ctrl_commands, 2u);
}

TEST_F(CtrlTest, MacTableAndExtraModes) {
  activate();
  EXPECT_EQ(request(0, 0, {0}), kOk);
  EXPECT_EQ(request(1, 0, table({kOther}, {kMcast}), true), kOk);  // MAC_TABLE_SET
  EXPECT_TRUE(delivered(kOther));
  EXPECT_TRUE(delivered(kMcast));
  EXPECT_FALSE(delivered(kMcast2));
  EXPECT_EQ(request(0, 5, {1}), kOk);  // NOBCAST
  EXPECT_FALSE(delivered(kBcast));
  EXPECT_EQ(request(0, 3, {1}), kOk);  // NOMULTI
  EXPECT_FALSE(delivered(kMcast));
  EXPECT_EQ(request(0, 4, {1}), kOk);  // NOUNI
  EXPECT_FALSE(delivered(own));
  EXPECT_EQ(request(0, 0, {1}), kOk);  // PROMISC wins
  EXPECT_TRUE(delivered(own));
  // More entries than the device holds: the whole class is accepted.
  EXPECT_EQ(request(0, 0, {0}), kOk);
  EXPECT_EQ(request(0, 4, {0}), kOk);
  std::vector<Mac> many(RxFilter::kMaxEntries + 1, kOther);
  EXPECT_EQ(request(1, 0, table(many, {})), kOk);
  EXPECT_TRUE(dev->rx_filter().uni_overflow);
  EXPECT_TRUE(delivered(Mac{0x02, 1, 2, 3, 4, 5}));
}

TEST_F(CtrlTest, MacAddrSetChangesConfigAndFilterUntilReset) {
  activate();
  const Mac n = {0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee};
  const uint32_t gen = dev->config_generation();
  EXPECT_EQ(request(1, 1, std::vector<uint8_t>(n.begin(), n.end())), kOk);
  EXPECT_EQ(dev->current_mac(), n);
  EXPECT_NE(dev->config_generation(), gen);
  uint8_t c[6];
  dev->read_config(0, c);
  EXPECT_EQ(std::memcmp(c, n.data(), 6), 0);
  EXPECT_EQ(request(0, 0, {0}), kOk);
  EXPECT_TRUE(delivered(n));
  EXPECT_FALSE(delivered(own));
  EXPECT_EQ(request(1, 1, {0x01, 0, 0, 0, 0, 1}), kErr);  // multicast: refused
  dev->reset();
  EXPECT_EQ(dev->current_mac(), own);
  EXPECT_TRUE(dev->rx_filter().promisc);
}

TEST_F(CtrlTest, MalformedOrUnnegotiatedRequestsAreRefused) {
  activate(feature_bit(nd::kCtrlRx));      // no RX_EXTRA, no MAC_ADDR, no GUEST_OFFLOADS
  EXPECT_EQ(request(0, 0, {}), kErr);      // no data byte
  EXPECT_EQ(request(0, 0, {1, 1}), kErr);  // too much data
  EXPECT_EQ(request(0, 2, {1}), kErr);     // ALLUNI needs CTRL_RX_EXTRA
  EXPECT_EQ(request(0, 9, {1}), kErr);     // unknown command
  EXPECT_EQ(request(1, 1, {2, 0, 0, 0, 0, 1}), kErr);          // MAC_ADDR_SET not negotiated
  EXPECT_EQ(request(4, 0, {1, 0}), kErr);                      // MQ not offered
  EXPECT_EQ(request(5, 0, std::vector<uint8_t>(8, 0)), kErr);  // GUEST_OFFLOADS not negotiated
  auto t = table({kOther}, {});
  t.pop_back();
  EXPECT_EQ(request(1, 0, t), kErr);  // truncated table
  auto big = table({}, {});
  big[0] = 0xff, big[1] = 0xff, big[2] = 0xff, big[3] = 0x0f;  // count beyond the data
  EXPECT_EQ(request(1, 0, big), kErr);
  EXPECT_TRUE(dev->rx_filter().promisc);  // nothing changed
  // No ack byte: returned with length 0, the queue goes on.
  const Seg noack[] = {{3, false, {0, 0, 0}}};
  ctrl->add_and_publish(noack, true);
  dev->process_queue(VirtioNet::kCtrlQueue);
  EXPECT_EQ(ctrl->used(ctrl->used_idx() - 1).len, 0u);
  EXPECT_EQ(request(0, 0, {0}), kOk);
}

TEST_F(CtrlTest, GuestOffloadsSet) {
  activate(feature_bit(nd::kCtrlGuestOffloads) | feature_bit(nd::kGuestCsum) |
           feature_bit(nd::kGuestTso4));
  const uint64_t csum = feature_bit(nd::kGuestCsum), tso6 = feature_bit(nd::kGuestTso6);
  auto le = [](uint64_t v) {
    std::vector<uint8_t> d;
    for (int i = 0; i < 8; ++i) d.push_back(static_cast<uint8_t>(v >> (8 * i)));
    return d;
  };
  EXPECT_EQ(request(5, 0, le(csum)), kOk);   // TSO off (e.g. for XDP), checksums stay
  EXPECT_EQ(request(5, 0, le(tso6)), kErr);  // never negotiated
  EXPECT_EQ(request(5, 0, le(csum), true), kOk);
  EXPECT_EQ(request(5, 0, {1, 0, 0}), kErr);  // wrong length
}

TEST_F(CtrlTest, WithoutCtrlVqTheQueueIsIgnored) {
  rx->configure(queues[0], true);
  tx->configure(queues[1], true);
  ctrl->configure(queues[2], true);
  virtio::ActivationContext ctx{mem, queues, irq, feature_bit(virtio::kFeatureVersion1)};
  ASSERT_TRUE(dev->activate(ctx).ok());
  const Seg r[] = {{3, false, {0, 0, 0}}, {1, true, {0xee}}};
  ctrl->add_and_publish(r, true);
  dev->process_queue(VirtioNet::kCtrlQueue);
  EXPECT_EQ(ctrl->used_idx(), 0);
}

}  // namespace
}  // namespace qvm::net::testing
