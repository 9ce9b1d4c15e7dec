// virtio-console MULTIPORT (virtio 1.2 §5.3.6.2) driven like a guest driver: the control
// handshake (DEVICE_READY -> DEVICE_ADD, PORT_READY -> CONSOLE_PORT/PORT_NAME/PORT_OPEN), data on
// port N's queues (2N+2, 2N+3), input held until PORT_OPEN, RESIZE, and hostile control traffic.
#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <string>

#include "blk_test_util.hpp"
#include "vdev/virtio_console/virtio_console.hpp"
#include "virtio/virtio_defs.hpp"

namespace qvm::vdev::testing {
namespace {

using virtio::feature_bit;
using VC = VirtioConsole;

std::vector<uint8_t> ctrl(uint32_t id, uint16_t event, uint16_t value) {
  console::Control c{id, event, value};
  std::vector<uint8_t> v(sizeof c);
  std::memcpy(v.data(), &c, sizeof c);
  return v;
}

struct Msg {
  console::Control c;
  std::string extra;
};

struct NullIrq final : public virtio::VirtioInterrupt {
  int config = 0;
  void signal_used(uint16_t) override {}
  void signal_config() override { ++config; }
};

// Three ports: 0 (console, unnamed), 1 "org.qvm.one" (host connected), 2 "two" (no host side).
struct MultiportTest : ::testing::Test {
  memory::GuestMemory mem;
  std::vector<virtio::Queue> queues;
  std::vector<std::unique_ptr<MockDriver>> drv;
  NullIrq irq;
  std::string out[3];
  std::unique_ptr<VC> dev;
  size_t msgs_seen = 0;
  std::map<uint16_t, uint64_t> ctrl_addr;  // c_ivq head -> its buffer

  void SetUp() override { start(true); }
  void start(bool negotiate) {
    ASSERT_TRUE(mem.add_region(0, 8ull << 20, false).ok());
    std::vector<VC::Port> ports(3);
    ports[1].name = "org.qvm.one";
    ports[2].name = "two";
    ports[2].host_connected = false;
    for (uint32_t i = 0; i < 3; ++i)
      ports[i].output = [this, i](std::span<const uint8_t> b) {
        out[i].append(b.begin(), b.end());
      };
    dev = std::make_unique<VC>(
        VC::Options{}, [this](uint16_t q) { dev->process_queue(q); }, std::move(ports));
    ASSERT_EQ(dev->queue_max_sizes().size(), 8u);
    for (uint16_t q = 0; q < 8; ++q) queues.emplace_back(VC::kQueueSize);
    for (uint16_t q = 0; q < 8; ++q) {
      drv.push_back(std::make_unique<MockDriver>(mem, 16, uint64_t{q} << 20));
      drv[q]->configure(queues[q]);
    }
    const uint64_t f = negotiate ? feature_bit(console::kFeatureMultiport) : 0;
    virtio::ActivationContext ctx{mem, queues, irq, f};
    ASSERT_TRUE(dev->activate(ctx).ok());
  }
  void post_ctrl_buffers(int n, uint32_t len = 64) {
    for (int i = 0; i < n; ++i) {
      const Seg s[] = {{len, true}};
      MockDriver& d = *drv[VC::kControlReceiveQueue];
      const uint16_t h = d.add_chain(s);
      ctrl_addr[h] = d.seg_addr(0);
      d.publish(h);
    }
    dev->process_queue(VC::kControlReceiveQueue);
  }
  void send_ctrl(uint32_t id, uint16_t event, uint16_t value) {
    const Seg s[] = {{8, false, ctrl(id, event, value)}};
    drv[VC::kControlTransmitQueue]->add_and_publish(s);
    dev->process_queue(VC::kControlTransmitQueue);
  }
  // Control messages the device wrote since the last call (c_ivq used entries).
  std::vector<Msg> take_msgs() {
    std::vector<Msg> v;
    MockDriver& d = *drv[VC::kControlReceiveQueue];
    for (; msgs_seen < d.used_idx(); ++msgs_seen) {
      auto u = d.used(static_cast<uint16_t>(msgs_seen));
      if (u.len < 8) {
        v.push_back({{0xffffffff, 0xffff, 0xffff}, {}});
        continue;
      }
      auto bytes = d.read_bytes(ctrl_addr[static_cast<uint16_t>(u.id)], u.len);
      Msg m{};
      std::memcpy(&m.c, bytes.data(), 8);
      m.extra.assign(bytes.begin() + 8, bytes.end());
      v.push_back(m);
    }
    return v;
  }
  size_t send(uint32_t port, const std::string& s) {
    // SAFETY: bytes of a string.
    return dev->receive(
        std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(s.data()), s.size()), port);
  }
  void handshake() {
    post_ctrl_buffers(16);
    send_ctrl(0, console::kDeviceReady, 1);
    for (uint32_t p = 0; p < 3; ++p) send_ctrl(p, console::kPortReady, 1);
    (void)take_msgs();
  }
};

TEST_F(MultiportTest, FeaturesQueuesAndConfig) {
  EXPECT_TRUE(dev->device_features() & feature_bit(console::kFeatureMultiport));
  EXPECT_TRUE(dev->device_features() & feature_bit(console::kFeatureSize));
  uint8_t c[4];
  dev->read_config(4, c);  // max_nr_ports (§5.3.4)
  EXPECT_EQ(c[0], 3);
  EXPECT_EQ(VC::receive_queue(0), 0);
  EXPECT_EQ(VC::transmit_queue(0), 1);
  EXPECT_EQ(VC::receive_queue(1), 4);
  EXPECT_EQ(VC::transmit_queue(2), 7);
  // One port: no MULTIPORT, two queues (the default device).
  VC one(VC::Options{}, VC::Hooks{});
  EXPECT_FALSE(one.device_features() & feature_bit(console::kFeatureMultiport));
  EXPECT_EQ(one.queue_max_sizes().size(), 2u);
}

TEST_F(MultiportTest, Handshake) {
  post_ctrl_buffers(16);
  send_ctrl(0, console::kDeviceReady, 1);
  auto m = take_msgs();
  ASSERT_EQ(m.size(), 3u);
  for (uint32_t i = 0; i < 3; ++i) {
    EXPECT_EQ(m[i].c.id, i);
    EXPECT_EQ(m[i].c.event, console::kDeviceAdd);
  }
  EXPECT_EQ(drv[VC::kControlTransmitQueue]->used_idx(), 1);
  send_ctrl(0, console::kPortReady, 1);
  m = take_msgs();
  ASSERT_EQ(m.size(), 2u);
  EXPECT_EQ(m[0].c.event, console::kConsolePort);
  EXPECT_EQ(m[0].c.value, 1);
  EXPECT_EQ(m[1].c.event, console::kPortOpen);
  EXPECT_EQ(m[1].c.value, 1);
  send_ctrl(1, console::kPortReady, 1);
  m = take_msgs();
  ASSERT_EQ(m.size(), 2u);
  EXPECT_EQ(m[0].c.id, 1u);
  EXPECT_EQ(m[0].c.event, console::kPortName);
  EXPECT_EQ(m[0].extra, "org.qvm.one");
  EXPECT_EQ(m[1].c.event, console::kPortOpen);
  send_ctrl(2, console::kPortReady, 1);  // named, no host side: the name only
  m = take_msgs();
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].c.event, console::kPortName);
  EXPECT_EQ(m[0].extra, "two");
}

TEST_F(MultiportTest, MessagesWaitForControlBuffers) {
  send_ctrl(0, console::kDeviceReady, 1);  // no c_ivq buffer yet
  EXPECT_TRUE(take_msgs().empty());
  post_ctrl_buffers(2);
  EXPECT_EQ(take_msgs().size(), 2u);
  post_ctrl_buffers(2);
  auto m = take_msgs();
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].c.id, 2u);
}

TEST_F(MultiportTest, DataOnPortOne) {
  handshake();
  // Guest -> host on transmitq 5.
  const Seg t[] = {{5, false, {'h', 'e', 'l', 'l', 'o'}}};
  drv[VC::transmit_queue(1)]->add_and_publish(t);
  dev->process_queue(VC::transmit_queue(1));
  EXPECT_EQ(out[1], "hello");
  EXPECT_EQ(out[0], "");
  // Host -> guest waits for PORT_OPEN from the guest.
  const Seg r[] = {{16, true}};
  MockDriver& rx = *drv[VC::receive_queue(1)];
  rx.add_chain(r);
  const uint64_t a = rx.seg_addr(0);
  rx.publish(0);
  EXPECT_EQ(send(1, "ping"), 4u);
  EXPECT_EQ(rx.used_idx(), 0);
  EXPECT_FALSE(dev->guest_open(1));
  send_ctrl(1, console::kPortOpen, 1);
  EXPECT_TRUE(dev->guest_open(1));
  ASSERT_EQ(rx.used_idx(), 1);
  EXPECT_EQ(rx.used(0).len, 4u);
  auto got = rx.read_bytes(a, 4);
  EXPECT_EQ(std::string(got.begin(), got.end()), "ping");
  // Port 0 (the console) needs no PORT_OPEN.
  const Seg r0[] = {{8, true}};
  drv[0]->add_and_publish(r0);
  EXPECT_EQ(send(0, "c"), 1u);
  EXPECT_EQ(drv[0]->used_idx(), 1);
  EXPECT_EQ(send(7, "x"), 0u);  // no such port
}

TEST_F(MultiportTest, ResizeSendsControlMessage) {
  handshake();
  dev->resize(100, 40);
  auto m = take_msgs();
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].c.event, console::kResize);
  ASSERT_EQ(m[0].extra.size(), 4u);
  uint16_t rc[2];
  std::memcpy(rc, m[0].extra.data(), 4);
  EXPECT_EQ(rc[0], 40);  // rows first (struct virtio_console_resize)
  EXPECT_EQ(rc[1], 100);
  EXPECT_EQ(irq.config, 1);
}

TEST_F(MultiportTest, HostileControlTraffic) {
  post_ctrl_buffers(4);
  const Seg shortmsg[] = {{4, false, {1, 2, 3, 4}}};
  drv[VC::kControlTransmitQueue]->add_and_publish(shortmsg);
  dev->process_queue(VC::kControlTransmitQueue);
  send_ctrl(9, console::kPortReady, 1);    // no such port
  send_ctrl(0, console::kDeviceAdd, 1);    // device -> driver event from the driver
  send_ctrl(1, console::kPortReady, 0);    // the driver failed the port
  send_ctrl(0, console::kDeviceReady, 0);  // the driver failed
  EXPECT_TRUE(take_msgs().empty());
  EXPECT_EQ(drv[VC::kControlTransmitQueue]->used_idx(), 5);
  // A driver repeating DEVICE_READY without reading c_ivq: the backlog is capped.
  for (int i = 0; i < 200; ++i) send_ctrl(0, console::kDeviceReady, 1);
  size_t total = 0;
  for (int round = 0; round < 80; ++round) {
    post_ctrl_buffers(4);
    auto m = take_msgs();
    total += m.size();
    if (m.empty()) break;
  }
  EXPECT_LE(total, VC::kMaxPendingControl + 4);
  EXPECT_GE(total, VC::kMaxPendingControl);
}

TEST_F(MultiportTest, ControlBufferTooSmall) {
  // A c_ivq buffer too small for the message: returned empty, the message dropped.
  post_ctrl_buffers(1, 4);
  send_ctrl(0, console::kDeviceReady, 1);
  auto m = take_msgs();
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].c.event, 0xffff);  // used length < 8
  post_ctrl_buffers(4);
  m = take_msgs();
  ASSERT_EQ(m.size(), 2u);
  EXPECT_EQ(m[0].c.id, 1u);
}

TEST_F(MultiportTest, ResetForgetsPortState) {
  handshake();
  send_ctrl(1, console::kPortOpen, 1);
  EXPECT_TRUE(dev->guest_open(1));
  dev->reset();
  EXPECT_FALSE(dev->guest_open(1));
  EXPECT_EQ(send(1, "kept"), 4u);
  EXPECT_EQ(dev->buffered(1), 4u);
}

TEST(MultiportNotNegotiated, OnlyPortZeroWorks) {
  memory::GuestMemory mem;
  ASSERT_TRUE(mem.add_region(0, 8ull << 20, false).ok());
  std::string out0, out1;
  std::vector<VC::Port> ports(2);
  ports[0].output = [&](std::span<const uint8_t> b) { out0.append(b.begin(), b.end()); };
  ports[1].output = [&](std::span<const uint8_t> b) { out1.append(b.begin(), b.end()); };
  VC dev(VC::Options{}, nullptr, std::move(ports));
  std::vector<virtio::Queue> queues;
  for (int q = 0; q < 6; ++q) queues.emplace_back(VC::kQueueSize);
  std::vector<std::unique_ptr<MockDriver>> drv;
  for (uint16_t q = 0; q < 6; ++q) {
    drv.push_back(std::make_unique<MockDriver>(mem, 16, uint64_t{q} << 20));
    drv[q]->configure(queues[q]);
  }
  NullIrq irq;
  virtio::ActivationContext ctx{mem, queues, irq, 0};
  ASSERT_TRUE(dev.activate(ctx).ok());
  const Seg c[] = {{8, false, ctrl(0, console::kDeviceReady, 1)}};
  drv[3]->add_and_publish(c);
  dev.process_queue(3);
  EXPECT_EQ(drv[3]->used_idx(), 0);  // not a control queue without MULTIPORT
  const Seg t[] = {{2, false, {'o', 'k'}}};
  drv[1]->add_and_publish(t);
  drv[5]->add_and_publish(t);
  dev.process_queue(1);
  dev.process_queue(5);
  EXPECT_EQ(out0, "ok");
  EXPECT_EQ(out1, "");
}

}  // namespace
}  // namespace qvm::vdev::testing
