// virtio-net receive path (virtio 1.2 §5.1.6.3, §5.1.6.4): frames from the backend into receiveq1.
//
// Popped receive chains wait in `p.spare` (in pop order) until a frame uses them; they stay popped
// across passes (only reset() drops them), so a chain is never handed back to the ring and never
// completed twice. A frame is read with one readv straight into guest memory when the chains at
// hand can hold the largest frame the guest accepts (`rx_need_`); otherwise it is read into a
// bounce buffer and copied once enough buffers are posted ("held" meanwhile, reading paused).
#include <algorithm>
#include <cstring>

#include "vdev/virtio_net/virtio_net.hpp"
#include "virtio/guest_error.hpp"
#include "virtio/queue/chain.hpp"
#include "virtio/virtio_defs.hpp"

namespace qvm::vdev {

void VirtioNet::rx_pass(size_t pi) {
  Pair& p = pairs_[pi];
  virtio::Queue& q = queues_[rxq(pi)];
  if (!q.ready()) return;
  p.backend->set_rx_enabled(true);
  bool more = false;
  for (uint32_t i = 0;; ++i) {
    if (i == kRxBatch) {
      more = true;  // bounded: continue from the event loop
      break;
    }
    const RxStep s = rx_one(p, q);
    if (s == RxStep::kDelivered) continue;
    // No buffers: stop reading the backend until the guest notifies the receive queue again. pop()
    // found the ring empty and (EVENT_IDX) published avail_event, so that notification will come.
    if (s == RxStep::kNoBuffers) p.backend->set_rx_enabled(false);
    break;
  }
  update_link();
  std::lock_guard lk(mu_);
  if (q.needs_notification(*mem_) && irq_) {
    ++stats_.interrupts;
    irq_->signal_used(rxq(pi));
  }
  if (more) self_kick(rxq(pi));
}

bool VirtioNet::gather(Pair& p, virtio::Queue& q, uint64_t need) {
  for (;;) {
    if (mergeable_ ? p.spare_bytes >= need : !p.spare.empty()) break;
    if (p.spare.size() >= q.size()) break;
    auto c = q.next(*mem_);
    if (!c) break;
    // §5.1.6.3.1: every receive buffer holds at least the header.
    if (c->writable_bytes < guest_hdr_len_) {
      ++stats_.rx_bad_buffers;
      virtio::log_guest_error("%s: receive chain %u has %llu writable bytes: returned unused",
                              opts_.name.c_str(), c->head,
                              static_cast<unsigned long long>(c->writable_bytes));
      (void)q.add_used(*mem_, c->head, 0);
      continue;
    }
    p.spare_bytes += c->writable_bytes;
    const size_t before = p.rx_iovs.size();
    virtio::ChainWriter w(*mem_, *c);
    auto got = w.iovecs(w.remaining(), p.rx_iovs);
    if (!got || *got != c->writable_bytes || p.rx_iovs.size() - before > kMaxIov) {
      p.rx_iovs.resize(before);
      p.spare_iov.push_back({before + p.rx_iov_base, kNoIov});
    } else {
      p.spare_iov.push_back(
          {before + p.rx_iov_base, static_cast<uint32_t>(p.rx_iovs.size() - before)});
    }
    p.spare.push_back(std::move(*c));
  }
  if (p.spare.empty()) return false;
  return mergeable_ ? p.spare_bytes >= need : p.spare.front().writable_bytes >= need;
}

VirtioNet::RxStep VirtioNet::rx_one(Pair& p, virtio::Queue& q) {
  if (p.held_len) return deliver_held(p, q);
  const bool enough = gather(p, q, rx_need_);
  if (p.spare.empty()) return RxStep::kNoBuffers;
  net::VnetHdr h{};
  bool direct = enough;
  if (direct) {
    iov_.clear();
    iov_.push_back({&h, net::kVnetHdrLen});
    uint64_t cap = 0;
    for (size_t j = 0; j < p.spare.size() && cap < rx_need_; ++j) {
      if (!append_spare_iov(p, j, j == 0 ? guest_hdr_len_ : 0) || iov_.size() > kMaxIov) {
        direct = false;
        break;
      }
      cap += p.spare[j].writable_bytes;
      if (!mergeable_) break;
    }
  }
  if (!direct) {
    // Too few (or too fragmented) buffers for the largest frame: read into the bounce buffer.
    if (p.bounce.empty()) p.bounce.resize(net::kVnetHdrLen + net::kMaxFrame);
    const iovec b{p.bounce.data(), p.bounce.size()};
    auto n = p.backend->receive(std::span<const iovec>(&b, 1));
    if (!n || *n == 0) return RxStep::kNoFrame;
    p.held_len = *n;
    ++stats_.rx_bounced;
    return deliver_held(p, q);
  }
  auto n = p.backend->receive(iov_);
  if (!n || *n == 0) return RxStep::kNoFrame;
  // Filtered: the guest's buffers were written but are not used; the next frame overwrites them.
  if (rx_filtered(std::span<const iovec>(iov_).subspan(1))) return RxStep::kDelivered;
  const uint64_t data = *n - net::kVnetHdrLen;
  complete_rx(p, q, guest_hdr_len_ + data, h, {});
  ++stats_.rx_frames;
  stats_.rx_bytes += data;
  return RxStep::kDelivered;
}

VirtioNet::RxStep VirtioNet::deliver_held(Pair& p, virtio::Queue& q) {
  const iovec frame{p.bounce.data() + net::kVnetHdrLen, p.held_len - net::kVnetHdrLen};
  if (rx_filtered(std::span<const iovec>(&frame, 1))) {
    p.held_len = 0;
    return RxStep::kDelivered;
  }
  const uint64_t data = p.held_len - net::kVnetHdrLen;
  const uint64_t guest_bytes = guest_hdr_len_ + data;
  const bool fits = gather(p, q, guest_bytes);
  if (p.spare.empty() || (!fits && mergeable_)) return RxStep::kNoBuffers;  // keep it, wait
  if (!fits) {
    // Without MRG_RXBUF a frame must fit one chain (§5.1.6.3.1): this guest posted a short one.
    ++stats_.rx_dropped;
    virtio::log_guest_error("%s: %llu-byte frame does not fit receive chain %u: dropped",
                            opts_.name.c_str(), static_cast<unsigned long long>(data),
                            p.spare.front().head);
    p.held_len = 0;
    return RxStep::kDelivered;
  }
  net::VnetHdr h{};
  std::memcpy(&h, p.bounce.data(), sizeof h);
  complete_rx(
      p, q, guest_bytes, h,
      std::span<const uint8_t>(p.bounce.data() + net::kVnetHdrLen, static_cast<size_t>(data)));
  p.held_len = 0;
  ++stats_.rx_frames;
  stats_.rx_bytes += data;
  return RxStep::kDelivered;
}

void VirtioNet::complete_rx(Pair& p, virtio::Queue& q, uint64_t guest_bytes, net::VnetHdr h,
                            std::span<const uint8_t> copy) {
  // How many chains the frame occupies (in order, each filled before the next).
  size_t m = 0;
  for (uint64_t left = guest_bytes; left > 0 && m < p.spare.size(); ++m)
    left -= std::min<uint64_t>(left, p.spare[m].writable_bytes);
  if (m == 0) m = 1;
  // §5.1.6.4: flags only with GUEST_CSUM (DATA_VALID, NEEDS_CSUM); num_buffers with MRG_RXBUF.
  if (!guest_offloads_.csum) h.flags = 0;
  h.num_buffers = static_cast<uint16_t>(mergeable_ ? m : 0);
  uint64_t left = guest_bytes;
  size_t off = 0;
  for (size_t j = 0; j < m; ++j) {
    virtio::ChainWriter w(*mem_, p.spare[j]);
    const uint64_t len = std::min<uint64_t>(left, p.spare[j].writable_bytes);
    if (j == 0) {
      // SAFETY: VnetHdr is trivially copyable; its first guest_hdr_len_ bytes are the header.
      (void)w.write(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(&h), guest_hdr_len_));
    }
    if (!copy.empty()) {
      const size_t chunk = static_cast<size_t>(
          std::min<uint64_t>(w.remaining(), len - (j == 0 ? guest_hdr_len_ : 0)));
      (void)w.write(copy.subspan(off, std::min(chunk, copy.size() - off)));
      off += chunk;
    }
    (void)q.add_used(*mem_, p.spare[j].head, static_cast<uint32_t>(len));
    left -= len;
  }
  pop_spare(p, m);
}

bool VirtioNet::append_spare_iov(Pair& p, size_t j, uint64_t skip) {
  const IovRange r = p.spare_iov[j];
  if (r.n == kNoIov) return false;
  const size_t first = r.off - p.rx_iov_base;
  for (size_t i = first; i < first + r.n; ++i) {
    iovec v = p.rx_iovs[i];
    const uint64_t k = std::min<uint64_t>(skip, v.iov_len);
    skip -= k;
    if (k == v.iov_len) continue;
    v.iov_base = static_cast<uint8_t*>(v.iov_base) + k;
    v.iov_len -= k;
    iov_.push_back(v);
  }
  return true;
}

void VirtioNet::pop_spare(Pair& p, size_t m) {
  for (size_t j = 0; j < m && !p.spare.empty(); ++j) {
    p.spare_bytes -= p.spare.front().writable_bytes;
    p.spare.pop_front();
    p.spare_iov.pop_front();
  }
  if (p.spare_iov.empty()) {
    p.rx_iovs.clear();  // keeps its capacity: no allocation per frame
    p.rx_iov_base = 0;
  } else if (const size_t dead = p.spare_iov.front().off - p.rx_iov_base; dead >= 4096) {
    p.rx_iovs.erase(p.rx_iovs.begin(), p.rx_iovs.begin() + static_cast<ptrdiff_t>(dead));
    p.rx_iov_base += dead;
  }
}

}  // namespace qvm::vdev
