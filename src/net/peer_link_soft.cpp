// Peer link receive path when the link may carry offloads the receiving guest did not negotiate
// (peer_link.hpp; docs/networking.md "Peer links whose guests negotiated differently"). The fast
// path stays a single recvmsg straight into the guest's buffers; an extra iovec (`spill_`) catches
// a GSO frame larger than those buffers, so no frame needs a second system call to be seen.
#include <algorithm>
#include <cstring>

#include "base/log.hpp"
#include "net/fd_backend.hpp"
#include "net/peer_link.hpp"
#include "net/soft_offload.hpp"

namespace qvm::net {
namespace {

size_t capacity(std::span<const iovec> iov) {
  size_t n = 0;
  for (const auto& v : iov) n += v.iov_len;
  return n;
}

// Copies `n` bytes out of `iov` (which holds at least that many) into `out`.
void gather(std::span<const iovec> iov, size_t n, std::vector<uint8_t>& out) {
  out.resize(n);
  size_t got = 0;
  for (const auto& v : iov) {
    if (got == n) break;
    const size_t k = std::min(v.iov_len, n - got);
    std::memcpy(out.data() + got, v.iov_base, k);
    got += k;
  }
}

// Copies `b` into `iov` (which has room for it).
void scatter(std::span<const iovec> iov, std::span<const uint8_t> b) {
  size_t put = 0;
  for (const auto& v : iov) {
    if (put == b.size()) break;
    const size_t k = std::min(v.iov_len, b.size() - put);
    std::memcpy(v.iov_base, b.data() + put, k);
    put += k;
  }
}

RateLimit g_soft_log(1.0, 5.0);

}  // namespace

bool PeerLink::soft_offload_possible() const {
  const Offloads& l = o_.offloads;
  const Offloads& g = rx_offloads_;
  return (l.csum && !g.csum) || (l.tso4 && !g.tso4) || (l.tso6 && !g.tso6) || (l.ecn && !g.ecn) ||
         (l.ufo && !g.ufo);
}

Result<size_t> PeerLink::receive_soft(std::span<const iovec> iov) {
  const size_t cap = capacity(iov);
  if (spill_.empty()) spill_.resize(kVnetHdrLen + kMaxFrame);
  rx_iov_.assign(iov.begin(), iov.end());
  rx_iov_.push_back({spill_.data(), spill_.size()});
  for (int tries = 0; tries < 8 && in_; ++tries) {
    // What the link may carry is accepted here; what the guest takes is decided below.
    auto r = recv_frame(in_.get(), true, rx_iov_, o_.offloads, stats_);
    if (!r || r->status == RecvStatus::kEof) {
      drop_in();
      return size_t{0};
    }
    if (r->status != RecvStatus::kFrame) return size_t{0};
    if (r->len <= cap && frame_offloads_allowed(header_of(rx_iov_), rx_offloads_))
      return r->len;  // as it came
    gather(rx_iov_, r->len, frame_);
    soft_offload(r->len);
    if (soft_next_ < soft_frames_.size()) return deliver_soft(iov);
  }
  return size_t{0};
}

void PeerLink::soft_offload(size_t len) {
  soft_buf_.clear();
  soft_frames_.clear();
  soft_next_ = 0;
  VnetHdr h{};
  std::memcpy(&h, frame_.data(), sizeof h);
  std::span<uint8_t> f(frame_.data() + kVnetHdrLen, len - kVnetHdrLen);
  VnetHdr out{};
  // We computed every checksum ourselves: a guest that checks them may skip it (§5.1.6.4).
  if (rx_offloads_.csum) out.flags = kHdrFlagDataValid;
  auto push = [this, &out](std::span<const uint8_t> fr) {
    const size_t off = soft_buf_.size();
    // SAFETY: VnetHdr is trivially copyable.
    const auto* hb = reinterpret_cast<const uint8_t*>(&out);
    soft_buf_.insert(soft_buf_.end(), hb, hb + sizeof out);
    soft_buf_.insert(soft_buf_.end(), fr.begin(), fr.end());
    soft_frames_.emplace_back(off, soft_buf_.size() - off);
  };
  const uint8_t gso = h.gso_type & static_cast<uint8_t>(~kGsoEcn);
  Status st;
  if (gso == kGsoTcpV4 || gso == kGsoTcpV6) {
    if (auto n = segment_tcp(f, h, push); !n) st = n.error();
  } else if (gso != kGsoNone) {
    st = make_error("UDP fragmentation offload is not done in software");
  } else if (h.flags & kHdrFlagNeedsCsum) {
    st = complete_checksum(f, h);
    if (st) push(f);
  } else {
    st = make_error("larger than the guest's receive buffers");
  }
  if (st) {
    ++stats_.rx_soft_offload;
    return;
  }
  ++stats_.rx_dropped;
  uint64_t skipped = 0;
  if (g_soft_log.allow(std::chrono::steady_clock::now(), &skipped))
    log_warn("peer link %s: %zu-byte frame dropped: %s (%llu more not shown)", o_.peer_path.c_str(),
             len - kVnetHdrLen, st.error().message.c_str(),
             static_cast<unsigned long long>(skipped));
}

size_t PeerLink::deliver_soft(std::span<const iovec> iov) {
  const size_t cap = capacity(iov);
  while (soft_next_ < soft_frames_.size()) {
    const auto [off, n] = soft_frames_[soft_next_++];
    if (n > cap) {
      ++stats_.rx_dropped;  // this guest's buffers are smaller than the sender's segments
      continue;
    }
    scatter(iov, std::span<const uint8_t>(soft_buf_).subspan(off, n));
    return n;
  }
  soft_frames_.clear();
  soft_next_ = 0;
  return 0;
}

}  // namespace qvm::net
