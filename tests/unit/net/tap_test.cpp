// TAP backend and virtio-net end to end with the host kernel, in a fresh network namespace
// (unshare(CLONE_NEWNET) on a helper thread: the namespace, its TAP devices and sockets vanish
// with the thread). Needs root (CAP_NET_ADMIN); as root, failing to set up is a failure.
#include "net/tap.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if_packet.h>
#include <linux/if_tun.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>

#include <thread>

#include "net/vhost.hpp"
#include "net_test_util.hpp"
#include "vdev/virtio_net/virtio_net_setup.hpp"

namespace qvm::net::testing {
namespace {

using vdev::VirtioNet;

// Runs `body` on a thread inside a new network namespace.
void in_netns(const std::function<void()>& body) {
  std::thread t([&] {
    ASSERT_EQ(::unshare(CLONE_NEWNET), 0) << std::strerror(errno);
    body();
  });
  t.join();
}

UniqueFd packet_socket(const char* ifname) {
  UniqueFd s(::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL)));
  if (!s) return s;
  sockaddr_ll a{};
  a.sll_family = AF_PACKET;
  a.sll_protocol = htons(ETH_P_ALL);
  a.sll_ifindex = static_cast<int>(::if_nametoindex(ifname));
  // SAFETY: sockaddr_ll is a sockaddr for the socket API.
  if (::bind(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) s.reset();
  return s;
}

// The next frame with our test ethertype (the kernel sends IPv6 solicitations on a new link too).
std::vector<uint8_t> recv_test_frame(int fd) {
  for (int i = 0; i < 50; ++i) {
    if (!readable(fd, 1000)) return {};
    std::vector<uint8_t> b(70000);
    ssize_t n = ::recv(fd, b.data(), b.size(), 0);
    if (n >= 14 && b[12] == 0x88 && b[13] == 0xb5) {
      b.resize(static_cast<size_t>(n));
      return b;
    }
  }
  return {};
}

class TapTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (CAP_NET_ADMIN) for a network namespace";
  }
};

TEST_F(TapTest, CreatesBringsUpAndRemovesInterface) {
  in_netns([] {
    auto t = TapBackend::open("qvmtap0");
    ASSERT_TRUE(t.ok()) << t.error().message;
    EXPECT_TRUE((*t)->created());
    EXPECT_NE(::if_nametoindex("qvmtap0"), 0u);
    EXPECT_TRUE((*t)->supported_offloads().csum);
    EXPECT_TRUE((*t)->supported_offloads().tso4);
    EXPECT_TRUE((*t)->set_rx_offloads({true, true, true, false, false}).ok());
    EXPECT_TRUE((*t)->link_up());
    t->reset();
    EXPECT_EQ(::if_nametoindex("qvmtap0"), 0u);  // created by us: gone with the fd
    EXPECT_FALSE(TapBackend::open("bad/name").ok());
    EXPECT_FALSE(TapBackend::open("waytoolonginterfacename").ok());
  });
}

TEST_F(TapTest, ExistingPersistentInterfaceIsKept) {
  in_netns([] {
    {
      UniqueFd fd(::open("/dev/net/tun", O_RDWR | O_CLOEXEC));
      ASSERT_TRUE(fd.valid());
      ifreq ifr{};
      std::strcpy(ifr.ifr_name, "qvmtap1");
      ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
      ASSERT_EQ(::ioctl(fd.get(), TUNSETIFF, &ifr), 0);
      ASSERT_EQ(::ioctl(fd.get(), TUNSETPERSIST, 1), 0);
    }
    auto t = TapBackend::open("qvmtap1");
    ASSERT_TRUE(t.ok()) << t.error().message;
    EXPECT_FALSE((*t)->created());
    t->reset();
    EXPECT_NE(::if_nametoindex("qvmtap1"), 0u);
    UniqueFd fd(::open("/dev/net/tun", O_RDWR | O_CLOEXEC));
    ifreq ifr{};
    std::strcpy(ifr.ifr_name, "qvmtap1");
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
    ASSERT_EQ(::ioctl(fd.get(), TUNSETIFF, &ifr), 0);
    ASSERT_EQ(::ioctl(fd.get(), TUNSETPERSIST, 0), 0);
  });
}

TEST_F(TapTest, GuestFramesReachTheHostAndBack) {
  in_netns([] {
    auto t = TapBackend::open("qvmtap2");
    ASSERT_TRUE(t.ok()) << t.error().message;
    UniqueFd ps = packet_socket("qvmtap2");
    ASSERT_TRUE(ps.valid()) << std::strerror(errno);

    memory::GuestMemory mem;
    ASSERT_TRUE(mem.add_region(0, 4ull << 20, false).ok());
    std::vector<virtio::Queue> queues{virtio::Queue(256), virtio::Queue(256)};
    MockDriver rx(mem, 16, 0), tx(mem, 16, 2ull << 20);
    rx.configure(queues[0], true);
    tx.configure(queues[1], true);
    VirtioNet::Options o;
    o.mac = generate_mac("tap", "net0");
    auto d = VirtioNet::create(o, std::move(*t));
    ASSERT_TRUE(d.ok());
    auto dev = *d;
    VirtioNet* raw = dev.get();
    dev->set_kick([raw](uint16_t q) { raw->process_queue(q); });
    NetInterrupt irq;
    namespace nd = vdev::net_dev;
    const uint64_t feats = virtio::feature_bit(virtio::kFeatureVersion1) |
                           virtio::feature_bit(nd::kMrgRxbuf) | virtio::feature_bit(nd::kCsum) |
                           virtio::feature_bit(nd::kGuestCsum);
    virtio::ActivationContext ctx{mem, queues, irq, feats};
    ASSERT_TRUE(dev->activate(ctx).ok());

    // guest -> host
    auto f = eth_frame(300, 11);
    std::memcpy(f.data() + 6, o.mac.data(), 6);
    const Seg c[] = {{static_cast<uint32_t>(12 + f.size()), false, with_hdr(VnetHdr{}, f)}};
    tx.add_and_publish(c);
    dev->process_queue(VirtioNet::kTxQueue);
    EXPECT_EQ(recv_test_frame(ps.get()), f);
    EXPECT_EQ(dev->stats().tx_frames, 1u);

    // host -> guest
    uint64_t addr[8];
    for (int i = 0; i < 8; ++i) {
      const Seg b[] = {{2048, true}};
      rx.add_chain(b);
      addr[i] = rx.seg_addr(0);
      rx.publish(static_cast<uint16_t>(i));
    }
    dev->process_queue(VirtioNet::kRxQueue);
    auto g = eth_frame(500, 21);
    ASSERT_EQ(::send(ps.get(), g.data(), g.size(), 0), static_cast<ssize_t>(g.size()));
    // Skip frames the kernel itself sends on the new link until ours arrives.
    bool found = false;
    for (int i = 0; i < 50 && !found; ++i) {
      if (readable(dev->poll_fd(), 200)) dev->on_ready();
      for (uint16_t u = 0; u < rx.used_idx() && !found; ++u) {
        auto e = rx.used(u);
        if (e.len != 12 + g.size()) continue;
        for (auto a : addr)
          if (rx.read_bytes(a + 12, g.size()) == g) found = true;
      }
    }
    EXPECT_TRUE(found);
  });
}

// `vhost` on a real TAP: `on` without vhost-net is an error naming the fix, `auto` falls back to
// the user-space path, and a vhost-net that opens is attached to the device.
TEST_F(TapTest, VhostOptionOnATap) {
  in_netns([] {
    vdev::NetSetup s;
    s.system = "sys";
    s.peer = "tap:qvmtap4";
    s.open_vhost = []() -> Result<std::unique_ptr<VhostIoctls>> {
      return Error{"opening /dev/vhost-net: No such file or directory", ENOENT};
    };
    s.vhost = "on";
    auto d = vdev::open_virtio_net(s);
    ASSERT_FALSE(d.ok());
    EXPECT_NE(d.error().message.find("`vhost on` but vhost-net is unavailable"), std::string::npos)
        << d.error().message;
    EXPECT_EQ(::if_nametoindex("qvmtap4"), 0u);  // nothing left behind
    s.vhost = "auto";
    d = vdev::open_virtio_net(s);
    ASSERT_TRUE(d.ok()) << d.error().message;
    EXPECT_FALSE((*d)->vhost_attached());
    d = Error{"released", 0};
    if (!vhost_net_available()) return;  // a host with /dev/vhost-net: the real one attaches
    s.open_vhost = nullptr;
    s.vhost = "on";
    d = vdev::open_virtio_net(s);
    ASSERT_TRUE(d.ok()) << d.error().message;
    EXPECT_TRUE((*d)->vhost_attached());
  });
}

// queues N on a TAP: N fds of one IFF_MULTI_QUEUE interface, queues detach and reattach, and a
// single-queue interface that exists is refused with the command that makes a multi-queue one.
TEST_F(TapTest, MultiQueue) {
  in_netns([] {
    auto qs = TapBackend::open_queues("qvmtap5", 3);
    ASSERT_TRUE(qs.ok()) << qs.error().message;
    ASSERT_EQ(qs->size(), 3u);
    ifreq ifr{};
    EXPECT_EQ(::ioctl((*qs)[1]->data_fd(), TUNGETIFF, &ifr), 0);
    EXPECT_TRUE(ifr.ifr_flags & IFF_MULTI_QUEUE);
    EXPECT_TRUE((*qs)[2]->set_queue_attached(false).ok());
    EXPECT_TRUE((*qs)[2]->set_queue_attached(false).ok());  // idempotent
    EXPECT_TRUE((*qs)[2]->set_queue_attached(true).ok());
    vdev::NetSetup s;
    s.system = "sys";
    s.peer = "tap:qvmtap6";
    s.queues = 2;
    s.vhost = "off";
    auto d = vdev::open_virtio_net(s);
    ASSERT_TRUE(d.ok()) << d.error().message;
    EXPECT_EQ((*d)->max_pairs(), 2);
    EXPECT_TRUE((*d)->device_features() & virtio::feature_bit(vdev::net_dev::kMq));
    // An existing single-queue TAP cannot serve two pairs.
    {
      UniqueFd fd(::open("/dev/net/tun", O_RDWR | O_CLOEXEC));
      ifreq r{};
      std::strcpy(r.ifr_name, "qvmtap7");
      r.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
      ASSERT_EQ(::ioctl(fd.get(), TUNSETIFF, &r), 0);
      ASSERT_EQ(::ioctl(fd.get(), TUNSETPERSIST, 1), 0);
    }
    s.peer = "tap:qvmtap7";
    auto bad = vdev::open_virtio_net(s);
    ASSERT_FALSE(bad.ok());
    EXPECT_NE(bad.error().message.find("multi_queue"), std::string::npos) << bad.error().message;
  });
}

}  // namespace
}  // namespace qvm::net::testing
