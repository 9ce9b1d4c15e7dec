// Fuzz target: the virtio-net transmit path (virtio 1.2 §5.1.6.2) against a sink backend, or
// (flag 32) the control queue (§5.1.6.5) with every control feature negotiated; flag 64 makes it a
// two-pair device with VIRTIO_NET_F_MQ (control queue 4, VQ_PAIRS_SET; transmit on pair 2).
// Input: one flag byte (EVENT_IDX, indirect chains, legacy 10-byte header, offloads negotiated,
// backend back-pressure, control queue), then chain descriptions: a segment count, then per segment
// a length and a device-writable bit, readable segments taking their contents (header first) from
// the input. Sometimes a raw descriptor is written instead, for malformed chains. Properties: no
// crash, hang or sanitizer report; every frame the backend sees is within the size limits and uses
// only offloads the guest negotiated; every published chain comes back in the used ring once
// back-pressure ends (one used entry per avail entry; not checked after a raw device-writable
// descriptor, which may point at the used ring).
#include <sys/eventfd.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <vector>

#include "fuzz_input.hpp"
#include "net/backend.hpp"
#include "net/fd_backend.hpp"
#include "net_backend_base.hpp"
#include "vdev/virtio_net/virtio_net.hpp"
#include "virtio/queue/testing/mock_driver.hpp"
#include "virtio/virtio_defs.hpp"

namespace {

using qvm::fuzz::check;
using qvm::fuzz::Input;
using qvm::fuzz::NullInterrupt;

using qvm::virtio::testing::MockDriver;
namespace net = qvm::net;
constexpr uint16_t kQueue = 64;

// Accepts frames, checks them, and pushes back every third one when asked to.
class Sink final : public qvm::fuzz::FuzzBackend {
 public:
  Sink(bool pushback, net::Offloads allowed) : pushback_(pushback), allowed_(allowed) {}
  std::string describe() const override { return "sink"; }
  qvm::Result<net::SendResult> send(std::span<const iovec> iov) override {
    size_t len = 0;
    for (const auto& v : iov) len += v.iov_len;
    check(len >= net::kVnetHdrLen + net::kMinFrame && len <= net::kVnetHdrLen + net::kMaxFrame);
    check(iov[0].iov_len == net::kVnetHdrLen);
    net::VnetHdr h{};
    std::memcpy(&h, iov[0].iov_base, sizeof h);
    check(net::frame_offloads_allowed(h, allowed_));
    // Touch every byte (ASan checks the guest views).
    volatile uint8_t x = 0;
    for (const auto& v : iov)
      for (size_t i = 0; i < v.iov_len; ++i)
        x = static_cast<uint8_t>(x ^ static_cast<const uint8_t*>(v.iov_base)[i]);
    if (pushback_ && (++sends_ % 3) == 0) {
      signal();
      return net::SendResult::kBlocked;
    }
    ++stats_.tx_frames;
    return net::SendResult::kSent;
  }
  qvm::Result<size_t> receive(std::span<const iovec>) override { return size_t{0}; }
  net::ServiceResult service() override {
    net::ServiceResult r;
    r.tx_ready = drain();
    return r;
  }
  void set_rx_enabled(bool) override {}
  bool rx_enabled() const override { return false; }

 private:
  bool pushback_;
  net::Offloads allowed_;
  uint64_t sends_ = 0;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace qvm;
  namespace nd = vdev::net_dev;
  using virtio::feature_bit;
  if (size < 1) return 0;
  Input in(data, size);
  const uint8_t flags = in.u8();
  const bool legacy = flags & 4, offloads = flags & 8, ctrl = flags & 32, mq = flags & 64;

  net::Offloads allowed = offloads ? net::Offloads{true, true, true, true, true} : net::Offloads{};
  std::vector<std::unique_ptr<net::Backend>> sinks;
  for (int i = 0; i < (mq ? 2 : 1); ++i)
    sinks.push_back(std::make_unique<Sink>(flags & 16, allowed));
  auto dev = vdev::VirtioNet::create({}, std::move(sinks));
  check(dev.ok());
  vdev::VirtioNet* d = dev->get();
  memory::GuestMemory mem;
  check(mem.add_region(0, 8ull << 20, false).ok());
  std::vector<virtio::Queue> queues;
  std::vector<std::unique_ptr<MockDriver>> drv;
  for (size_t q = 0; q < d->queue_max_sizes().size(); ++q) {
    queues.emplace_back(d->queue_max_sizes()[q]);
    drv.push_back(std::make_unique<MockDriver>(mem, kQueue, q << 20));
    drv.back()->configure(queues.back(), flags & 1, (flags & 2) && q > 0);
  }
  // The queue the chains go to: the control queue (2, or 4 with MQ) or the last transmit queue.
  const uint16_t qi =
      ctrl ? static_cast<uint16_t>(queues.size() - 1) : static_cast<uint16_t>(queues.size() - 2);
  MockDriver& tx = *drv[qi];
  d->set_kick([d](uint16_t q) { d->process_queue(q); });
  uint64_t f = feature_bit(nd::kMac);
  if (!legacy) f |= feature_bit(virtio::kFeatureVersion1) | feature_bit(nd::kMrgRxbuf);
  if (offloads)
    f |= feature_bit(nd::kCsum) | feature_bit(nd::kHostTso4) | feature_bit(nd::kHostTso6) |
         feature_bit(nd::kHostEcn) | feature_bit(nd::kHostUfo);
  if (flags & 1) f |= feature_bit(virtio::kFeatureEventIdx);
  if (ctrl)
    f |= feature_bit(nd::kCtrlVq) | feature_bit(nd::kCtrlRx) | feature_bit(nd::kCtrlRxExtra) |
         feature_bit(nd::kCtrlMacAddr) | feature_bit(nd::kCtrlGuestOffloads) |
         feature_bit(nd::kGuestCsum) | feature_bit(nd::kGuestTso4);
  if (mq) f |= feature_bit(nd::kCtrlVq) | feature_bit(nd::kMq);
  NullInterrupt irq;
  virtio::ActivationContext ctx{mem, queues, irq, f};
  check(d->activate(ctx).ok());

  uint16_t published = 0;
  // A raw device-writable (or indirect) descriptor may aim the control queue's status byte at the
  // rings themselves (a hostile driver harms only itself): then the used-ring count is not checked.
  bool raw_writable = false;
  while (!in.empty() && published < kQueue) {
    const uint8_t n = in.u8();
    if (n == 0xff) {  // a raw (possibly malformed) descriptor
      const uint16_t idx = in.u16() % kQueue;
      const uint64_t addr = (uint64_t{in.u16()} << 8) | in.u8();
      const uint32_t len = in.u16();
      const uint16_t fl = in.u8() & 7, next = in.u16();
      raw_writable |= (fl & 6) != 0;
      tx.set_desc(idx, virtio::VirtqDesc{addr, len, fl, next});
      tx.publish(idx);
      ++published;
      continue;
    }
    std::vector<MockDriver::Seg> segs;
    const size_t count = 1 + n % 8;
    for (size_t i = 0; i < count; ++i) {
      uint16_t len = in.u16();
      const bool write = (len & 0x8000) && (len & 0x4000);
      len = static_cast<uint16_t>(len & 0x3fff);
      MockDriver::Seg s{len, write, {}};
      if (!write) s.data = in.bytes(std::min<size_t>(len, 64));
      segs.push_back(std::move(s));
    }
    tx.add_and_publish(segs, (n & 0x80) && (flags & 2));
    ++published;
  }
  d->process_queue(qi);
  // Back-pressure and batch bounds resume from the event loop: run it until nothing is pending.
  for (int i = 0; i < 4 * kQueue; ++i) d->on_ready();
  if (ctrl) d->process_queue(qi);  // the control queue takes at most 64 requests per pass
  check(queues[qi].needs_reset() || raw_writable || tx.used_idx() == published);
  (void)d->status_text();
  d->reset();
  return 0;
}
