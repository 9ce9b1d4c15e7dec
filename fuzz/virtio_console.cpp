// Fuzz target: virtio-console with three ports (virtio 1.2 §5.3), MULTIPORT control queues
// included (§5.3.6.2). Input: one flag byte (MULTIPORT negotiated, EVENT_IDX), then operations:
// control buffers posted (c_ivq), control messages sent (c_ovq, sometimes short or raw), host
// input for a port, guest transmit and receive chains on any queue, raw (malformed) descriptors,
// resizes, reset + reactivation.
// Properties: no crash, hang or sanitizer report; the device never emits more bytes on a port
// than the guest made readable on that port's transmitq (plus emergency writes on port 0); a
// used length never exceeds the writable bytes the chain offered; buffered input per port stays
// within the limit. The accounting properties apply to inputs without raw descriptors (those may
// point device-writable buffers at the rings themselves).
#include "vdev/virtio_console/virtio_console.hpp"

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "fuzz_input.hpp"
#include "virtio/queue/testing/mock_driver.hpp"
#include "virtio/virtio_defs.hpp"

namespace {

using qvm::fuzz::check;
using qvm::fuzz::Input;
using qvm::fuzz::NullInterrupt;

using qvm::virtio::testing::MockDriver;
using VC = qvm::vdev::VirtioConsole;
constexpr uint16_t kQueue = 16;
constexpr uint16_t kQueues = 8;  // 3 ports: 2 * (3 + 1)
constexpr size_t kMaxBuffered = 256;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace qvm;
  if (size < 1) return 0;
  Input in(data, size);
  const uint8_t flags = in.u8();

  memory::GuestMemory mem;
  check(mem.add_region(0, 2ull << 20, false).ok());
  std::vector<virtio::Queue> queues;
  std::vector<std::unique_ptr<MockDriver>> drv;
  for (uint16_t q = 0; q < kQueues; ++q) queues.emplace_back(VC::kQueueSize);
  for (uint16_t q = 0; q < kQueues; ++q) {
    drv.push_back(std::make_unique<MockDriver>(mem, kQueue, uint64_t{q} << 17));
    drv[q]->configure(queues[q], flags & 2);
  }
  uint64_t emitted[3] = {0, 0, 0};
  uint64_t offered[3] = {0, 0, 0};  // readable bytes published on each port's transmitq
  std::vector<VC::Port> ports(3);
  ports[1].name = "org.qvm.fuzz";
  ports[2].host_connected = false;
  for (size_t i = 0; i < 3; ++i)
    ports[i].output = [&emitted, i](std::span<const uint8_t> b) { emitted[i] += b.size(); };
  VC* raw = nullptr;
  auto dev = std::make_unique<VC>(
      VC::Options{80, 25, kMaxBuffered}, [&raw](uint16_t q) { raw->process_queue(q); },
      std::move(ports));
  raw = dev.get();
  check(dev->queue_max_sizes().size() == kQueues);
  NullInterrupt irq;
  const uint64_t features =
      (flags & 1) ? virtio::feature_bit(vdev::console::kFeatureMultiport) : uint64_t{0};
  virtio::ActivationContext ctx{mem, queues, irq, features};
  check(dev->activate(ctx).ok());

  std::vector<uint32_t> writable(kQueue, 0);  // c_ivq: writable bytes per head
  uint32_t c_posts = 0;                       // c_ivq chains published (heads unique while <= 16)
  for (int op = 0; op < 96 && !in.empty(); ++op) {
    const uint8_t kind = in.u8();
    const uint32_t port = in.u8() % 3;
    switch (kind % 9) {
      case 0: {  // c_ivq buffer
        const uint32_t len = in.u8();
        const MockDriver::Seg s[] = {{len, true, {}}};
        const uint16_t h = drv[VC::kControlReceiveQueue]->add_and_publish(s);
        writable[h % kQueue] = len;
        ++c_posts;
        dev->process_queue(VC::kControlReceiveQueue);
        break;
      }
      case 1: {  // control message, mostly well-formed
        vdev::console::Control c{in.u8() < 240 ? in.u8() % 4u : in.u32(),
                                 static_cast<uint16_t>(in.u8() % 9),
                                 static_cast<uint16_t>(in.u8() % 3)};
        std::vector<uint8_t> b(sizeof c);
        std::memcpy(b.data(), &c, sizeof c);
        const uint32_t len = (kind & 0x80) ? in.u8() % 12u : 8u;
        const MockDriver::Seg s[] = {{len, false, b}};
        drv[VC::kControlTransmitQueue]->add_and_publish(s);
        dev->process_queue(VC::kControlTransmitQueue);
        break;
      }
      case 2: {  // host input
        auto bytes = in.bytes(in.u8());
        (void)dev->receive(bytes, (kind & 0x80) ? in.u8() : port);
        check(dev->buffered(port) <= kMaxBuffered);
        break;
      }
      case 3: {  // guest transmit on the port
        auto bytes = in.bytes(in.u8() % 64);
        const uint16_t q = VC::transmit_queue(port);
        const MockDriver::Seg s[] = {{static_cast<uint32_t>(bytes.size()), false, bytes}};
        drv[q]->add_and_publish(s, kind & 0x40);
        offered[port] += bytes.size();
        dev->process_queue(q);
        break;
      }
      case 4: {  // guest receive buffer on the port
        const uint16_t q = VC::receive_queue(port);
        const MockDriver::Seg s[] = {{in.u8(), !(kind & 0x80), {}}};
        drv[q]->add_and_publish(s, kind & 0x40);
        dev->process_queue(q);
        break;
      }
      case 5:
        dev->resize(in.u16(), in.u16());
        break;
      case 6: {  // raw descriptor on any queue
        const uint16_t q = in.u8() % kQueues;
        const auto idx = static_cast<uint16_t>(in.u8() % kQueue);
        drv[q]->set_desc(idx, virtio::VirtqDesc{in.u64() & 0x3fffff, in.u16(), in.u16(), in.u16()});
        drv[q]->publish(idx);
        dev->process_queue(q);
        // A raw descriptor may aim device-writable bytes (host input, control events) at any
        // queue's rings or descriptor table, rewriting used entries and transmit lengths: a
        // hostile driver harms only itself, so the accounting checks below stop applying.
        c_posts = kQueue + 1;
        for (uint64_t& o : offered) o = UINT64_MAX / 2;
        break;
      }
      case 7:
        dev->process_queue(in.u8());  // any index, including ones that do not exist
        break;
      default:
        if (kind & 0x80) {
          dev->reset();
          check(dev->activate(ctx).ok());
        } else {
          const uint8_t w[4] = {in.u8(), 0, 0, 0};
          dev->write_config(8, w);  // emerg_wr
          offered[0] += 1;
        }
        break;
    }
  }
  for (size_t i = 0; i < 3; ++i) check(emitted[i] <= offered[i]);
  MockDriver& c = *drv[VC::kControlReceiveQueue];
  if (c_posts <= kQueue && !queues[VC::kControlReceiveQueue].needs_reset())
    for (uint16_t i = 0; i < c.used_idx(); ++i) {
      auto u = c.used(i);
      check(u.id < kQueue && u.len <= writable[u.id]);
    }
  dev->reset();
  return 0;
}
