// vhost-net wiring (linux/vhost.h) without /dev/vhost-net: a recorder stands in for the ioctls
// and the tests check the sequence VhostNet issues, and how VirtioNet hands its queues to it at
// DRIVER_OK (virtio 1.2 §3.1.1), takes them back on reset (§2.4) and falls back to the user-space
// path when the kernel refuses.
#include "net/vhost.hpp"

#include <sys/eventfd.h>

#include "base/log.hpp"
#include "net/fd_backend.hpp"
#include "net_test_util.hpp"
#include "vdev/virtio_net/virtio_net_setup.hpp"

namespace qvm::net::testing {
namespace {

using vdev::VirtioNet;
using virtio::feature_bit;
namespace nd = vdev::net_dev;

std::string hex(uint64_t v) {
  return strprintf("0x%llx", static_cast<unsigned long long>(v));
}

// Records every call as text; `fail` names a call that returns EINVAL.
struct Recorder final : public VhostIoctls {
  std::shared_ptr<std::vector<std::string>> log = std::make_shared<std::vector<std::string>>();
  uint64_t features = VhostNet::kRingFeatures;
  std::string fail;
  uint32_t base = 7;

  Status rec(std::string s) {
    const std::string name = s.substr(0, s.find(' '));
    log->push_back(std::move(s));
    if (name == fail) return Error{"injected " + name, EINVAL};
    return {};
  }
  Status set_owner() override { return rec("SET_OWNER"); }
  Result<uint64_t> get_features() override {
    QVM_TRY(rec("GET_FEATURES"));
    return features;
  }
  Status set_features(uint64_t f) override { return rec("SET_FEATURES " + hex(f)); }
  Status set_mem_table(std::span<const VhostMemRegion> r) override {
    std::string s = "SET_MEM_TABLE";
    for (const auto& m : r) s += " " + hex(m.gpa) + "+" + hex(m.size) + "@" + hex(m.uaddr);
    return rec(s);
  }
  Status set_vring_num(uint32_t i, uint32_t n) override {
    return rec(strprintf("SET_VRING_NUM %u %u", i, n));
  }
  Status set_vring_base(uint32_t i, uint32_t b) override {
    return rec(strprintf("SET_VRING_BASE %u %u", i, b));
  }
  Result<uint32_t> get_vring_base(uint32_t i) override {
    QVM_TRY(rec(strprintf("GET_VRING_BASE %u", i)));
    return base;
  }
  Status set_vring_addr(const VhostVringAddr& a) override {
    return rec(strprintf("SET_VRING_ADDR %u ", a.index) + hex(a.desc) + " " + hex(a.avail) + " " +
               hex(a.used));
  }
  Status set_vring_kick(uint32_t i, int fd) override {
    return rec(strprintf("SET_VRING_KICK %u %d", i, fd));
  }
  Status set_vring_call(uint32_t i, int fd) override {
    return rec(strprintf("SET_VRING_CALL %u %d", i, fd));
  }
  Status set_backend(uint32_t i, int fd) override {
    return rec(strprintf("SET_BACKEND %u %d", i, fd));
  }
  Status set_tap_vnet_hdr_len(int fd, int len) override {
    return rec(strprintf("TUNSETVNETHDRSZ %d %d", fd, len));
  }
};

VhostNet::StartParams two_queues(uint32_t hdr = 12) {
  VhostNet::StartParams p;
  p.guest_features = feature_bit(virtio::kFeatureVersion1) | feature_bit(nd::kMrgRxbuf) |
                     feature_bit(nd::kCsum) | feature_bit(virtio::kFeatureEventIdx);
  p.vnet_hdr_len = hdr;
  p.mem = {{0, 0x1000, 0x7000}};
  p.queues = {{0, 256, 0, 0x100, 0x200, 0x300, 10, 11}, {1, 256, 3, 0x400, 0x500, 0x600, 12, 13}};
  return p;
}

TEST(VhostNet, StartAndStopSequence) {
  auto rec = std::make_unique<Recorder>();
  auto log = rec->log;
  auto v = VhostNet::create(std::move(rec), 42);
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(*log, (std::vector<std::string>{"SET_OWNER", "GET_FEATURES"}));
  log->clear();
  ASSERT_TRUE((*v)->start(two_queues()).ok());
  EXPECT_TRUE((*v)->running());
  // Only the ring features reach the kernel (CSUM is the TAP's business: TUNSETOFFLOAD).
  const std::vector<std::string> want = {"SET_FEATURES 0x120008000",
                                         "SET_MEM_TABLE 0x0+0x1000@0x7000",
                                         "SET_VRING_NUM 0 256",
                                         "SET_VRING_BASE 0 0",
                                         "SET_VRING_ADDR 0 0x100 0x200 0x300",
                                         "SET_VRING_KICK 0 10",
                                         "SET_VRING_CALL 0 11",
                                         "SET_VRING_NUM 1 256",
                                         "SET_VRING_BASE 1 3",
                                         "SET_VRING_ADDR 1 0x400 0x500 0x600",
                                         "SET_VRING_KICK 1 12",
                                         "SET_VRING_CALL 1 13",
                                         "SET_BACKEND 0 42",
                                         "SET_BACKEND 1 42"};
  EXPECT_EQ(*log, want);
  log->clear();
  EXPECT_EQ((*v)->stop(), (std::vector<uint16_t>{7, 7}));
  EXPECT_EQ(*log, (std::vector<std::string>{"SET_BACKEND 0 -1", "GET_VRING_BASE 0",
                                            "SET_BACKEND 1 -1", "GET_VRING_BASE 1"}));
  EXPECT_FALSE((*v)->running());
  log->clear();
  EXPECT_TRUE((*v)->stop().empty());  // idempotent
  EXPECT_TRUE(log->empty());
}

TEST(VhostNet, LegacyHeaderLengthSetOnTheTapAndRestored) {
  auto rec = std::make_unique<Recorder>();
  auto log = rec->log;
  auto v = VhostNet::create(std::move(rec), 42);
  ASSERT_TRUE(v.ok());
  auto p = two_queues(10);
  p.guest_features = 0;
  ASSERT_TRUE((*v)->start(p).ok());
  EXPECT_EQ((*log)[log->size() - 3], "TUNSETVNETHDRSZ 42 10");
  log->clear();
  (void)(*v)->stop();
  EXPECT_EQ(log->back(), "TUNSETVNETHDRSZ 42 12");
}

TEST(VhostNet, FeatureTheKernelLacksIsRefusedBeforeAnyIoctl) {
  auto rec = std::make_unique<Recorder>();
  rec->features = feature_bit(virtio::kFeatureVersion1);
  auto log = rec->log;
  auto v = VhostNet::create(std::move(rec), 42);
  ASSERT_TRUE(v.ok());
  log->clear();
  auto s = (*v)->start(two_queues());
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("0x20008000"), std::string::npos) << s.error().message;
  EXPECT_TRUE(log->empty());
}

TEST(VhostNet, FailedStartUndoesConfiguredQueues) {
  auto rec = std::make_unique<Recorder>();
  rec->fail = "SET_VRING_KICK";
  auto log = rec->log;
  auto v = VhostNet::create(std::move(rec), 42);
  ASSERT_TRUE(v.ok());
  log->clear();
  ASSERT_FALSE((*v)->start(two_queues()).ok());
  EXPECT_FALSE((*v)->running());
  EXPECT_EQ(log->back(), "GET_VRING_BASE 0");
  EXPECT_EQ((*log)[log->size() - 2], "SET_BACKEND 0 -1");
}

TEST(VhostNet, OwnerRefusedIsAnError) {
  auto rec = std::make_unique<Recorder>();
  rec->fail = "SET_OWNER";
  EXPECT_FALSE(VhostNet::create(std::move(rec), 42).ok());
}

// VirtioNet over a socketpair "TAP" with the recorder as its vhost-net.
struct VhostDevTest : ::testing::Test {
  memory::GuestMemory mem;
  std::vector<virtio::Queue> queues{virtio::Queue(VirtioNet::kQueueSize),
                                    virtio::Queue(VirtioNet::kQueueSize)};
  std::unique_ptr<MockDriver> rx, tx;
  NetInterrupt irq;
  UniqueFd host;
  UniqueFd kick[2];
  int tap_fd = -1;
  std::shared_ptr<std::vector<std::string>> log;
  std::shared_ptr<VirtioNet> dev;

  void make(std::string fail = "", bool notify_fds = true) {
    ASSERT_TRUE(mem.add_region(0, 4ull << 20, false).ok());
    rx = std::make_unique<MockDriver>(mem, 16, 0);
    tx = std::make_unique<MockDriver>(mem, 16, 2ull << 20);
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
    host.reset(sv[1]);
    auto be = FdBackend::create(UniqueFd(sv[0]), {}, "test");
    ASSERT_TRUE(be.ok());
    tap_fd = (*be)->data_fd();
    auto rec = std::make_unique<Recorder>();
    rec->fail = std::move(fail);
    log = rec->log;
    auto vh = VhostNet::create(std::move(rec), tap_fd);
    ASSERT_TRUE(vh.ok());
    VirtioNet::Options o;
    o.mac = generate_mac("sys", "net0");
    auto d = VirtioNet::create(o, std::move(*be), std::move(*vh));
    ASSERT_TRUE(d.ok()) << d.error().message;
    dev = *d;
    dev->set_kick([this](uint16_t q) { dev->process_queue(q); });
    for (uint16_t q = 0; q < 2 && notify_fds; ++q) {
      kick[q].reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
      EXPECT_TRUE(dev->set_notify_fd(q, kick[q].get()));  // with vhost-net the device polls it
    }
    log->clear();
  }
  void activate() {
    rx->configure(queues[0], true);
    tx->configure(queues[1], true);
    const uint64_t f = feature_bit(virtio::kFeatureVersion1) |
                       feature_bit(virtio::kFeatureEventIdx) | feature_bit(nd::kMrgRxbuf) |
                       feature_bit(nd::kStatus) | feature_bit(nd::kMac);
    virtio::ActivationContext ctx{mem, queues, irq, f};
    ASSERT_TRUE(dev->activate(ctx).ok());
  }
  uint64_t host_addr(uint64_t gpa) {
    return reinterpret_cast<uint64_t>(mem.host_range(gpa, 1)->data());
  }
  bool logged(const std::string& s) { return std::find(log->begin(), log->end(), s) != log->end(); }
};

TEST_F(VhostDevTest, DriverOkHandsTheQueuesToTheKernel) {
  make();
  EXPECT_NE(dev->describe().find("vhost-net"), std::string::npos);
  EXPECT_TRUE(dev->wants_ioeventfd());  // vhost-net's kick
  activate();
  ASSERT_TRUE(dev->vhost_running());
  EXPECT_EQ(log->front(), "SET_FEATURES 0x120008000");
  EXPECT_TRUE(logged("SET_MEM_TABLE 0x0+0x400000@" + hex(host_addr(0))));
  EXPECT_TRUE(logged("SET_VRING_NUM 1 16"));
  EXPECT_TRUE(logged("SET_VRING_ADDR 1 " + hex(host_addr(tx->desc_addr())) + " " +
                     hex(host_addr(tx->avail_addr())) + " " + hex(host_addr(tx->used_addr()))));
  EXPECT_TRUE(logged(strprintf("SET_VRING_KICK 0 %d", kick[0].get())));
  EXPECT_TRUE(logged(strprintf("SET_BACKEND 1 %d", tap_fd)));
  // The kernel gets one kick per queue for buffers posted before DRIVER_OK.
  uint64_t v = 0;
  EXPECT_EQ(::read(kick[1].get(), &v, sizeof v), 8);
  // qvm no longer touches the rings: a transmitted chain stays for the kernel.
  const Seg c[] = {{12 + 60, false, with_hdr({}, eth_frame(60, 1))}};
  tx->add_and_publish(c, true);
  dev->process_queue(VirtioNet::kTxQueue);
  EXPECT_EQ(tx->used_idx(), 0);
  EXPECT_FALSE(readable(host.get(), 0));
}

// The device polls the queue ioeventfds only while the kernel does not run the queues: a guest
// notification under vhost-net wakes the vhost worker alone.
TEST_F(VhostDevTest, DevicePollsKicksOnlyWhileTheKernelDoesNot) {
  make();
  const uint64_t one = 1;
  ASSERT_EQ(::write(kick[1].get(), &one, sizeof one), 8);
  EXPECT_TRUE(readable(dev->poll_fd(), 200));
  dev->on_ready();  // drains it (not activated yet: nothing else to do)
  EXPECT_FALSE(readable(dev->poll_fd(), 0));
  activate();
  ASSERT_TRUE(dev->vhost_running());
  ASSERT_EQ(::write(kick[1].get(), &one, sizeof one), 8);
  EXPECT_FALSE(readable(dev->poll_fd(), 50));
  dev->reset();  // the kicks written meanwhile are the device's again
  EXPECT_TRUE(readable(dev->poll_fd(), 200));
}

TEST_F(VhostDevTest, KernelCallBecomesTheTransportInterrupt) {
  make();
  activate();
  // The call fd is the one given to SET_VRING_CALL 0: find it in the log and write it.
  int call = -1;
  for (const auto& s : *log)
    if (s.rfind("SET_VRING_CALL 0 ", 0) == 0) call = std::stoi(s.substr(17));
  ASSERT_GE(call, 0);
  uint64_t one = 1;
  ASSERT_EQ(::write(call, &one, sizeof one), 8);
  ASSERT_TRUE(readable(dev->poll_fd(), 1000));
  dev->on_ready();
  EXPECT_EQ(irq.used[0], 1);
  EXPECT_EQ(irq.used[1], 0);
  EXPECT_EQ(dev->stats().vhost_calls, 1u);
}

TEST_F(VhostDevTest, ResetStopsTheKernelAndRestartsOnNextDriverOk) {
  make();
  activate();
  log->clear();
  dev->reset();
  EXPECT_FALSE(dev->vhost_running());
  EXPECT_EQ(*log, (std::vector<std::string>{"SET_BACKEND 0 -1", "GET_VRING_BASE 0",
                                            "SET_BACKEND 1 -1", "GET_VRING_BASE 1"}));
  for (auto& q : queues) q.reset();
  for (int i = 0; i < 3; ++i) {  // guest reboots: every DRIVER_OK starts it again
    activate();
    EXPECT_TRUE(dev->vhost_running());
    dev->reset();
    for (auto& q : queues) q.reset();
  }
  EXPECT_EQ(dev->stats().vhost_starts, 4u);
}

TEST_F(VhostDevTest, KernelRefusalFallsBackToUserSpace) {
  make("SET_MEM_TABLE");
  activate();
  EXPECT_FALSE(dev->vhost_running());
  EXPECT_EQ(dev->stats().vhost_failures, 1u);
  auto f = eth_frame(60, 3);
  const Seg c[] = {{12 + 60, false, with_hdr({}, f)}};
  tx->add_and_publish(c, true);
  dev->process_queue(VirtioNet::kTxQueue);
  EXPECT_EQ(tx->used_idx(), 1);
  EXPECT_TRUE(readable(host.get(), 1000));
}

TEST_F(VhostDevTest, NoIoeventfdsMeansUserSpace) {
  make("", false);
  activate();
  EXPECT_FALSE(dev->vhost_running());
  EXPECT_TRUE(log->empty());
}

// Two pairs (MQ): one vhost-net per pair, each given its own rings (vhost rings 0/1 = the pair's
// receive and transmit queues) and kicks; pair 2 is started only when MQ is negotiated.
TEST(VhostMq, OneVhostPerPair) {
  memory::GuestMemory mem;
  ASSERT_TRUE(mem.add_region(0, 8ull << 20, false).ok());
  std::vector<std::unique_ptr<Backend>> bes;
  std::vector<std::unique_ptr<VhostNet>> vhs;
  std::vector<std::shared_ptr<std::vector<std::string>>> logs;
  std::vector<UniqueFd> hosts;
  for (int i = 0; i < 2; ++i) {
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
    hosts.emplace_back(sv[1]);
    auto be = FdBackend::create(UniqueFd(sv[0]), {}, "test");
    ASSERT_TRUE(be.ok());
    auto rec = std::make_unique<Recorder>();
    logs.push_back(rec->log);
    auto vh = VhostNet::create(std::move(rec), (*be)->data_fd());
    ASSERT_TRUE(vh.ok());
    bes.push_back(std::move(*be));
    vhs.push_back(std::move(*vh));
  }
  auto d = VirtioNet::create(VirtioNet::Options{}, std::move(bes), std::move(vhs));
  ASSERT_TRUE(d.ok()) << d.error().message;
  auto dev = *d;
  std::vector<UniqueFd> kicks;
  for (uint16_t q = 0; q < 4; ++q) {
    kicks.emplace_back(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    dev->set_notify_fd(q, kicks.back().get());
  }
  std::vector<virtio::Queue> queues;
  std::vector<std::unique_ptr<MockDriver>> drv;
  for (size_t q = 0; q < dev->queue_max_sizes().size(); ++q) {
    queues.emplace_back(dev->queue_max_sizes()[q]);
    drv.push_back(std::make_unique<MockDriver>(mem, 16, q << 20));
    drv.back()->configure(queues.back(), true);
  }
  NetInterrupt irq;
  for (auto& l : logs) l->clear();
  const uint64_t f = feature_bit(virtio::kFeatureVersion1) | feature_bit(nd::kCtrlVq);
  virtio::ActivationContext ctx{mem, queues, irq, f};  // no MQ: only pair 1
  ASSERT_TRUE(dev->activate(ctx).ok());
  EXPECT_FALSE(logs[0]->empty());
  EXPECT_TRUE(logs[1]->empty());
  dev->reset();
  for (auto& q : queues) q.reset();
  for (size_t q = 0; q < queues.size(); ++q) drv[q]->configure(queues[q], true);
  for (auto& l : logs) l->clear();
  virtio::ActivationContext ctx2{mem, queues, irq, f | feature_bit(nd::kMq)};
  ASSERT_TRUE(dev->activate(ctx2).ok());
  auto has = [](const std::vector<std::string>& l, const std::string& s) {
    return std::find(l.begin(), l.end(), s) != l.end();
  };
  const auto addr = [&](uint64_t gpa) {
    return hex(reinterpret_cast<uint64_t>(mem.host_range(gpa, 1)->data()));
  };
  EXPECT_TRUE(has(*logs[1], "SET_VRING_ADDR 0 " + addr(drv[2]->desc_addr()) + " " +
                                addr(drv[2]->avail_addr()) + " " + addr(drv[2]->used_addr())));
  EXPECT_TRUE(has(*logs[1], strprintf("SET_VRING_KICK 1 %d", kicks[3].get())));
  EXPECT_TRUE(dev->vhost_running());
  EXPECT_EQ(dev->stats().vhost_starts, 3u);
}

TEST(VhostSetup, IoeventfdOption) {
  vdev::NetSetup s;
  s.system = "sys";
  auto d = vdev::open_virtio_net(s);
  ASSERT_TRUE(d.ok());
  EXPECT_TRUE((*d)->wants_ioeventfd());  // auto = on, also without vhost-net
  s.ioeventfd = "off";
  d = vdev::open_virtio_net(s);
  ASSERT_TRUE(d.ok());
  EXPECT_FALSE((*d)->wants_ioeventfd());  // explicit opt-in: notify on the vCPU thread
  s.ioeventfd = "on";
  d = vdev::open_virtio_net(s);
  ASSERT_TRUE(d.ok());
  EXPECT_TRUE((*d)->wants_ioeventfd());
  s.ioeventfd = "sometimes";
  EXPECT_FALSE(vdev::open_virtio_net(s).ok());
}

TEST(VhostSetup, OnNeedsATap) {
  vdev::NetSetup s;
  s.system = "sys";
  s.vhost = "on";
  auto d = vdev::open_virtio_net(s);
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.error().message.find("peer tap:"), std::string::npos);
  EXPECT_FALSE(vdev::vhost_plan(s).ok());
  s.vhost = "bogus";
  EXPECT_FALSE(vdev::open_virtio_net(s).ok());
  s.vhost = "auto";
  auto p = vdev::vhost_plan(s);
  ASSERT_TRUE(p.ok());
  EXPECT_NE(p->text.find("not a TAP"), std::string::npos);
  EXPECT_FALSE(p->kernel);
  s.peer = "tap:qvm0";
  p = vdev::vhost_plan(s);
  ASSERT_TRUE(p.ok());
  const bool there = vhost_net_available();
  EXPECT_NE(p->text.find(there ? "kernel data path" : "absent"), std::string::npos) << p->text;
  EXPECT_EQ(p->kernel, there);
  s.ioeventfd = "off";
  EXPECT_FALSE(vdev::vhost_plan(s)->kernel);
  s.ioeventfd = "auto";
  s.vhost = "off";
  EXPECT_EQ(vdev::vhost_plan(s)->text, "vhost-net off: user-space data path");
  s.vhost = "on";
  s.ioeventfd = "off";
  EXPECT_FALSE(vdev::open_virtio_net(s).ok());  // vhost-net needs the ioeventfd kick
}

}  // namespace
}  // namespace qvm::net::testing
