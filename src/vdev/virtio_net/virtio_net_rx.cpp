// virtio-net receive path (virtio 1.2 §5.1.6.3, §5.1.6.4): frames from the backend into receiveq1.
//
// Popped receive chains wait in `spare_` (in pop order) until a frame uses them; they stay popped
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

void VirtioNet::rx_pass() {
  virtio::Queue& q = queues_[kRxQueue];
  if (!q.ready()) return;
  backend_->set_rx_enabled(true);
  bool more = false;
  for (uint32_t i = 0;; ++i) {
    if (i == kRxBatch) {
      more = true;  // bounded: continue from the event loop
      break;
    }
    const RxStep s = rx_one();
    if (s == RxStep::kDelivered) continue;
    // No buffers: stop reading the backend until the guest notifies receiveq1 again. pop() found
    // the ring empty and (EVENT_IDX) published avail_event, so that notification will come.
    if (s == RxStep::kNoBuffers) backend_->set_rx_enabled(false);
    break;
  }
  update_link();
  std::lock_guard lk(mu_);
  if (q.needs_notification(*mem_) && irq_) {
    ++stats_.interrupts;
    irq_->signal_used(kRxQueue);
  }
  if (more) self_kick(kRxQueue);
}

bool VirtioNet::gather(uint64_t need) {
  virtio::Queue& q = queues_[kRxQueue];
  for (;;) {
    if (mergeable_ ? spare_bytes_ >= need : !spare_.empty()) break;
    if (spare_.size() >= q.size()) break;
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
    spare_bytes_ += c->writable_bytes;
    const size_t before = rx_iovs_.size();
    virtio::ChainWriter w(*mem_, *c);
    auto got = w.iovecs(w.remaining(), rx_iovs_);
    if (!got || *got != c->writable_bytes || rx_iovs_.size() - before > kMaxIov) {
      rx_iovs_.resize(before);
      spare_iov_.push_back({before + rx_iov_base_, kNoIov});
    } else {
      spare_iov_.push_back(
          {before + rx_iov_base_, static_cast<uint32_t>(rx_iovs_.size() - before)});
    }
    spare_.push_back(std::move(*c));
  }
  if (spare_.empty()) return false;
  return mergeable_ ? spare_bytes_ >= need : spare_.front().writable_bytes >= need;
}

VirtioNet::RxStep VirtioNet::rx_one() {
  if (held_len_) return deliver_held();
  const bool enough = gather(rx_need_);
  if (spare_.empty()) return RxStep::kNoBuffers;
  net::VnetHdr h{};
  bool direct = enough;
  if (direct) {
    iov_.clear();
    iov_.push_back({&h, net::kVnetHdrLen});
    uint64_t cap = 0;
    for (size_t j = 0; j < spare_.size() && cap < rx_need_; ++j) {
      if (!append_spare_iov(j, j == 0 ? guest_hdr_len_ : 0) || iov_.size() > kMaxIov) {
        direct = false;
        break;
      }
      cap += spare_[j].writable_bytes;
      if (!mergeable_) break;
    }
  }
  if (!direct) {
    // Too few (or too fragmented) buffers for the largest frame: read into the bounce buffer.
    if (bounce_.empty()) bounce_.resize(net::kVnetHdrLen + net::kMaxFrame);
    const iovec b{bounce_.data(), bounce_.size()};
    auto n = backend_->receive(std::span<const iovec>(&b, 1));
    if (!n || *n == 0) return RxStep::kNoFrame;
    held_len_ = *n;
    ++stats_.rx_bounced;
    return deliver_held();
  }
  auto n = backend_->receive(iov_);
  if (!n || *n == 0) return RxStep::kNoFrame;
  // Filtered: the guest's buffers were written but are not used; the next frame overwrites them.
  if (rx_filtered(std::span<const iovec>(iov_).subspan(1))) return RxStep::kDelivered;
  const uint64_t data = *n - net::kVnetHdrLen;
  complete_rx(guest_hdr_len_ + data, h, {});
  ++stats_.rx_frames;
  stats_.rx_bytes += data;
  return RxStep::kDelivered;
}

VirtioNet::RxStep VirtioNet::deliver_held() {
  const iovec frame{bounce_.data() + net::kVnetHdrLen, held_len_ - net::kVnetHdrLen};
  if (rx_filtered(std::span<const iovec>(&frame, 1))) {
    held_len_ = 0;
    return RxStep::kDelivered;
  }
  const uint64_t data = held_len_ - net::kVnetHdrLen;
  const uint64_t guest_bytes = guest_hdr_len_ + data;
  const bool fits = gather(guest_bytes);
  if (spare_.empty() || (!fits && mergeable_)) return RxStep::kNoBuffers;  // keep it, wait
  if (!fits) {
    // Without MRG_RXBUF a frame must fit one chain (§5.1.6.3.1): this guest posted a short one.
    ++stats_.rx_dropped;
    virtio::log_guest_error("%s: %llu-byte frame does not fit receive chain %u: dropped",
                            opts_.name.c_str(), static_cast<unsigned long long>(data),
                            spare_.front().head);
    held_len_ = 0;
    return RxStep::kDelivered;
  }
  net::VnetHdr h{};
  std::memcpy(&h, bounce_.data(), sizeof h);
  complete_rx(
      guest_bytes, h,
      std::span<const uint8_t>(bounce_.data() + net::kVnetHdrLen, static_cast<size_t>(data)));
  held_len_ = 0;
  ++stats_.rx_frames;
  stats_.rx_bytes += data;
  return RxStep::kDelivered;
}

void VirtioNet::complete_rx(uint64_t guest_bytes, net::VnetHdr h, std::span<const uint8_t> copy) {
  virtio::Queue& q = queues_[kRxQueue];
  // How many chains the frame occupies (in order, each filled before the next).
  size_t m = 0;
  for (uint64_t left = guest_bytes; left > 0 && m < spare_.size(); ++m)
    left -= std::min<uint64_t>(left, spare_[m].writable_bytes);
  if (m == 0) m = 1;
  // §5.1.6.4: flags only with GUEST_CSUM (DATA_VALID, NEEDS_CSUM); num_buffers with MRG_RXBUF.
  if (!guest_offloads_.csum) h.flags = 0;
  h.num_buffers = static_cast<uint16_t>(mergeable_ ? m : 0);
  uint64_t left = guest_bytes;
  size_t off = 0;
  for (size_t j = 0; j < m; ++j) {
    virtio::ChainWriter w(*mem_, spare_[j]);
    const uint64_t len = std::min<uint64_t>(left, spare_[j].writable_bytes);
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
    (void)q.add_used(*mem_, spare_[j].head, static_cast<uint32_t>(len));
    left -= len;
  }
  pop_spare(m);
}

bool VirtioNet::append_spare_iov(size_t j, uint64_t skip) {
  const IovRange r = spare_iov_[j];
  if (r.n == kNoIov) return false;
  const size_t first = r.off - rx_iov_base_;
  for (size_t i = first; i < first + r.n; ++i) {
    iovec v = rx_iovs_[i];
    const uint64_t k = std::min<uint64_t>(skip, v.iov_len);
    skip -= k;
    if (k == v.iov_len) continue;
    v.iov_base = static_cast<uint8_t*>(v.iov_base) + k;
    v.iov_len -= k;
    iov_.push_back(v);
  }
  return true;
}

void VirtioNet::pop_spare(size_t m) {
  for (size_t j = 0; j < m && !spare_.empty(); ++j) {
    spare_bytes_ -= spare_.front().writable_bytes;
    spare_.pop_front();
    spare_iov_.pop_front();
  }
  if (spare_iov_.empty()) {
    rx_iovs_.clear();  // keeps its capacity: no allocation per frame
    rx_iov_base_ = 0;
  } else if (const size_t dead = spare_iov_.front().off - rx_iov_base_; dead >= 4096) {
    rx_iovs_.erase(rx_iovs_.begin(), rx_iovs_.begin() + static_cast<ptrdiff_t>(dead));
    rx_iov_base_ += dead;
  }
}

}  // namespace qvm::vdev
