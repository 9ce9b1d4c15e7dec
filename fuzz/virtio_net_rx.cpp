// Fuzz target: the virtio-net receive path (virtio 1.2 §5.1.6.3, §5.1.6.4) from a source backend
// into the guest's receive queue. Input: one flag byte (EVENT_IDX, indirect chains, legacy
// 10-byte header, MRG_RXBUF, guest offloads, promiscuous filter off), then a mix of receive
// chains the driver posts (segment counts and lengths, device-writable or not, or a raw, possibly
// malformed descriptor) and frames the backend returns (length, virtio_net_hdr fields, bytes).
// Properties: no crash, hang or sanitizer report; every used element names a chain the driver
// posted and reports no more bytes than that chain's writable length; a chain is used at most
// once; the device never returns more used entries than chains were published.
#include <sys/eventfd.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <vector>

#include "fuzz_input.hpp"
#include "net/backend.hpp"
#include "net_backend_base.hpp"
#include "vdev/virtio_net/virtio_net.hpp"
#include "virtio/queue/testing/mock_driver.hpp"
#include "virtio/virtio_defs.hpp"

// A violated property names itself (the crash report then says which).
#define RX_CHECK(x)                                                                         \
  do {                                                                                      \
    if (!(x)) {                                                                             \
      std::fprintf(stderr, "virtio_net_rx: property failed: %s (line %d)\n", #x, __LINE__); \
      std::abort();                                                                         \
    }                                                                                       \
  } while (0)

namespace {

using qvm::fuzz::check;
using qvm::fuzz::Input;
using qvm::fuzz::NullInterrupt;
using qvm::virtio::testing::MockDriver;
namespace net = qvm::net;
constexpr uint16_t kQueue = 64;

// Hands out queued frames (a virtio_net_hdr_v1 + the frame), scattered over the caller's iovecs
// and cut at their capacity as a TAP's readv is.
class Source final : public qvm::fuzz::FuzzBackend {
 public:
  std::deque<std::vector<uint8_t>> frames;
  std::string describe() const override { return "source"; }
  qvm::Result<net::SendResult> send(std::span<const iovec>) override {
    return net::SendResult::kSent;
  }
  qvm::Result<size_t> receive(std::span<const iovec> iov) override {
    if (frames.empty()) return size_t{0};
    const std::vector<uint8_t> f = std::move(frames.front());
    frames.pop_front();
    size_t at = 0;
    for (const auto& v : iov) {
      const size_t n = std::min(v.iov_len, f.size() - at);
      if (n) std::memcpy(v.iov_base, f.data() + at, n);
      at += n;
      if (at == f.size()) break;
    }
    return at;
  }
  net::ServiceResult service() override {
    net::ServiceResult r;
    r.rx_ready = drain() || !frames.empty();
    return r;
  }
  void set_rx_enabled(bool on) override { enabled_ = on; }
  bool rx_enabled() const override { return enabled_; }
  void ready() { signal(); }

 private:
  bool enabled_ = false;
};
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace qvm;
  namespace nd = vdev::net_dev;
  using virtio::feature_bit;
  if (size < 1) return 0;
  Input in(data, size);
  const uint8_t flags = in.u8();
  const bool legacy = flags & 4, mrg = flags & 8, offloads = flags & 16;

  auto src = std::make_unique<Source>();
  Source* s = src.get();
  std::vector<std::unique_ptr<net::Backend>> backends;
  backends.push_back(std::move(src));
  auto dev = vdev::VirtioNet::create({}, std::move(backends));
  check(dev.ok());
  vdev::VirtioNet* d = dev->get();
  memory::GuestMemory mem;
  check(mem.add_region(0, 8ull << 20, false).ok());
  std::vector<virtio::Queue> queues;
  std::vector<std::unique_ptr<MockDriver>> drv;
  for (size_t q = 0; q < d->queue_max_sizes().size(); ++q) {
    queues.emplace_back(d->queue_max_sizes()[q]);
    drv.push_back(std::make_unique<MockDriver>(mem, kQueue, q << 20));
    drv.back()->configure(queues.back(), flags & 1, (flags & 2) && q == 0);
  }
  MockDriver& rx = *drv[0];
  d->set_kick([d](uint16_t q) { d->process_queue(q); });
  uint64_t f = feature_bit(nd::kMac);
  if (!legacy) f |= feature_bit(virtio::kFeatureVersion1);
  if (mrg) f |= feature_bit(nd::kMrgRxbuf);
  if (offloads)
    f |= feature_bit(nd::kGuestCsum) | feature_bit(nd::kGuestTso4) | feature_bit(nd::kGuestTso6) |
         feature_bit(nd::kGuestEcn) | feature_bit(nd::kGuestUfo);
  if (flags & 1) f |= feature_bit(virtio::kFeatureEventIdx);
  NullInterrupt irq;
  virtio::ActivationContext ctx{mem, queues, irq, f};
  check(d->activate(ctx).ok());

  std::map<uint16_t, uint64_t> posted;  // head -> writable bytes (direct chains only)
  uint16_t published = 0;
  size_t descs = 0;  // descriptors handed out: the mock driver's table wraps after kQueue
  bool raw = false;
  while (!in.empty() && published < kQueue) {
    const uint8_t op = in.u8();
    if (op < 0x60) {  // a receive chain
      std::vector<MockDriver::Seg> segs;
      uint64_t writable = 0;
      const size_t count = 1 + op % 4;
      for (size_t i = 0; i < count; ++i) {
        uint16_t len = in.u16();
        const bool write = !(len & 0x8000);
        len = static_cast<uint16_t>(len & 0x1fff);
        if (write) writable += len;
        segs.push_back(MockDriver::Seg{len, write, {}});
      }
      const bool indirect = (op & 0x40) && (flags & 2);
      descs += indirect ? 1 : count;
      if (descs > kQueue) break;  // would overwrite chains still posted
      const uint16_t head = rx.add_chain(segs, indirect);
      rx.publish(head);
      ++published;
      if (!indirect && !posted.count(head))
        posted[head] = writable;
      else
        raw = true;          // a reused head: the check below cannot tell the two apart
    } else if (op < 0x70) {  // a raw descriptor
      const uint16_t idx = in.u16() % kQueue;
      const uint64_t addr = (uint64_t{in.u16()} << 8) | in.u8();
      const uint32_t len = in.u16();
      const uint16_t fl = in.u8() & 7, next = in.u16();
      rx.set_desc(idx, virtio::VirtqDesc{addr, len, fl, next});
      rx.publish(idx);
      ++published;
      raw = true;
    } else {  // a frame from the backend
      const size_t len = in.u16() % (net::kVnetHdrLen + net::kMaxFrame + 64);
      std::vector<uint8_t> frame = in.bytes(std::min<size_t>(len, 96));
      frame.resize(len, 0x5a);
      s->frames.push_back(std::move(frame));
      s->ready();
      d->on_ready();
    }
  }
  d->process_queue(0);
  for (int i = 0; i < 4 * kQueue && !s->frames.empty(); ++i) {
    s->ready();
    d->on_ready();
  }
  RX_CHECK(rx.used_idx() <= published || queues[0].needs_reset());
  if (!raw && !queues[0].needs_reset()) {
    std::map<uint16_t, int> seen;
    for (uint16_t i = 0; i < rx.used_idx(); ++i) {
      const auto e = rx.used(i);
      const auto it = posted.find(static_cast<uint16_t>(e.id));
      RX_CHECK(e.id < kQueue && it != posted.end());
      RX_CHECK(e.len <= it->second);
      RX_CHECK(++seen[static_cast<uint16_t>(e.id)] == 1);
    }
  }
  (void)d->status_text();
  d->reset();
  return 0;
}
