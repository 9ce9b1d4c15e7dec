// virtio-net transmit path (virtio 1.2 §5.1.6.2): chains of transmitqN to the pair's backend.
// See virtio_net.hpp ("Data path").
#include "net/fd_backend.hpp"
#include "vdev/virtio_net/virtio_net.hpp"
#include "virtio/guest_error.hpp"
#include "virtio/queue/chain.hpp"

namespace qvm::vdev {

void VirtioNet::tx_pass(size_t pi) {
  Pair& p = pairs_[pi];
  virtio::Queue& q = queues_[txq(pi)];
  uint32_t done = 0;
  bool more = false;
  while (!p.tx_blocked) {
    if (done == kTxBatch) {
      more = true;  // bounded: continue from the event loop
      break;
    }
    auto chain = q.next(*mem_);
    if (!chain) break;
    ++done;
    virtio::ChainReader r(*mem_, *chain);
    net::VnetHdr h{};
    const uint64_t frame =
        chain->readable_bytes >= guest_hdr_len_ ? chain->readable_bytes - guest_hdr_len_ : 0;
    // SAFETY: VnetHdr is trivially copyable; the guest's header fills its first bytes.
    auto* hb = reinterpret_cast<uint8_t*>(&h);
    bool ok = frame >= net::kMinFrame && frame <= net::kMaxFrame &&
              r.read_exact(std::span<uint8_t>(hb, guest_hdr_len_)).ok();
    h.num_buffers = 0;
    if (ok && !net::frame_offloads_allowed(h, host_offloads_)) ok = false;
    if (ok && (h.flags & net::kHdrFlagNeedsCsum) &&
        uint64_t{h.csum_start} + h.csum_offset + 2 > frame)
      ok = false;
    iov_.clear();
    iov_.push_back({&h, net::kVnetHdrLen});
    if (ok) {
      auto got = r.iovecs(frame, iov_);
      ok = got.ok() && *got == frame && iov_.size() <= kMaxIov;
    }
    if (!ok) {
      ++stats_.tx_malformed;
      virtio::log_guest_error(
          "%s: transmit chain %u malformed (%llu bytes, gso %u, flags %u): dropped",
          opts_.name.c_str(), chain->head, static_cast<unsigned long long>(chain->readable_bytes),
          h.gso_type, h.flags);
    } else {
      auto sent = p.backend->send(iov_);
      if (sent.ok() && *sent == net::SendResult::kBlocked) {
        q.undo_pop();  // retried when the backend drains (on_ready: tx_ready)
        p.tx_blocked = true;
        break;
      }
      if (sent.ok() && *sent == net::SendResult::kSent) {
        ++stats_.tx_frames;
        stats_.tx_bytes += frame;
      } else {
        ++stats_.tx_dropped;
      }
    }
    // §5.1.6.2: transmit buffers are returned with nothing written.
    if (!q.add_used(*mem_, chain->head, 0)) break;
  }
  update_link();
  std::lock_guard lk(mu_);
  if (q.needs_notification(*mem_) && irq_) {
    ++stats_.interrupts;
    irq_->signal_used(txq(pi));
  }
  if (more) self_kick(txq(pi));
}

}  // namespace qvm::vdev
