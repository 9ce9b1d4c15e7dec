// FdBackend and the one-frame I/O helpers. See fd_backend.hpp.
#include "net/fd_backend.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <memory>

namespace qvm::net {

bool frame_offloads_allowed(const VnetHdr& h, const Offloads& allowed) {
  if ((h.flags & kHdrFlagNeedsCsum) && !allowed.csum) return false;
  if ((h.gso_type & kGsoEcn) && !allowed.ecn) return false;
  switch (h.gso_type & ~kGsoEcn) {
    case kGsoNone:
      return true;
    case kGsoTcpV4:
      return allowed.tso4;
    case kGsoTcpV6:
      return allowed.tso6;
    case kGsoUdp:
      return allowed.ufo;
    default:
      return false;
  }
}

Offloads normalized(Offloads o) {
  if (!o.csum) o.tso4 = o.tso6 = o.ufo = false;
  if (!o.tso4 && !o.tso6) o.ecn = false;
  return o;
}

VnetHdr header_of(std::span<const iovec> iov) {
  VnetHdr h{};
  // SAFETY: VnetHdr is trivially copyable; its bytes are gathered from the iovecs.
  auto* dst = reinterpret_cast<uint8_t*>(&h);
  size_t got = 0;
  for (const auto& v : iov) {
    if (got == sizeof h) break;
    size_t n = std::min(v.iov_len, sizeof h - got);
    std::memcpy(dst + got, v.iov_base, n);
    got += n;
  }
  return h;
}

Result<RecvOne> recv_frame(int fd, bool is_socket, std::span<const iovec> iov,
                           const Offloads& allowed, BackendStats& st) {
  for (int tries = 0; tries < 8; ++tries) {
    ssize_t n;
    bool trunc = false;
    if (is_socket) {
      msghdr m{};
      m.msg_iov = const_cast<iovec*>(iov.data());  // recvmsg does not write the iovec array
      m.msg_iovlen = iov.size();
      n = ::recvmsg(fd, &m, MSG_DONTWAIT);
      trunc = (m.msg_flags & MSG_TRUNC) != 0;
    } else {
      n = ::readv(fd, iov.data(), static_cast<int>(iov.size()));
    }
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EIO || errno == EBADFD) return RecvOne{};
      if (errno == ECONNRESET) return RecvOne{RecvStatus::kEof, 0};
      return Error::from_errno("reading a frame", errno);
    }
    if (n == 0) return RecvOne{RecvStatus::kEof, 0};
    const auto len = static_cast<size_t>(n);
    if (trunc || len < kVnetHdrLen + kMinFrame ||
        !frame_offloads_allowed(header_of(iov), allowed)) {
      ++st.rx_dropped;
      continue;
    }
    ++st.rx_frames;
    st.rx_bytes += len;
    return RecvOne{RecvStatus::kFrame, len};
  }
  return RecvOne{};
}

SendResult send_frame(int fd, bool is_socket, std::span<const iovec> iov, BackendStats& st) {
  size_t len = 0;
  for (const auto& v : iov) len += v.iov_len;
  for (;;) {
    ssize_t n;
    if (is_socket) {
      msghdr m{};
      m.msg_iov = const_cast<iovec*>(iov.data());  // sendmsg does not write the iovec array
      m.msg_iovlen = iov.size();
      n = ::sendmsg(fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
    } else {
      n = ::writev(fd, iov.data(), static_cast<int>(iov.size()));
    }
    if (n >= 0) {
      ++st.tx_frames;
      st.tx_bytes += len;
      return SendResult::kSent;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == ENOBUFS) return SendResult::kBlocked;
    // EINVAL (header rejected), EMSGSIZE, EIO (interface down), EPIPE (peer gone): this frame.
    ++st.tx_dropped;
    return SendResult::kDropped;
  }
}

Result<std::unique_ptr<FdBackend>> FdBackend::create(UniqueFd fd, Offloads offloads,
                                                     std::string description) {
  Poller p = QVM_TRY(Poller::create());
  std::unique_ptr<FdBackend> b(
      new FdBackend(std::move(fd), std::move(p), offloads, std::move(description)));
  QVM_TRY(b->init());
  return b;
}

Status FdBackend::init() {
  int fl = ::fcntl(fd_.get(), F_GETFL);
  if (fl < 0 || ::fcntl(fd_.get(), F_SETFL, fl | O_NONBLOCK) != 0)
    return Error::from_errno("fcntl O_NONBLOCK", errno);
  struct stat sb {};
  if (::fstat(fd_.get(), &sb) != 0) return Error::from_errno("fstat", errno);
  is_socket_ = S_ISSOCK(sb.st_mode);
  supported_ = normalized(supported_);
  QVM_TRY(poller_.add(fd_.get(), 0, 0));
  return {};
}

void FdBackend::update_interest() {
  if (!up_) return;
  uint32_t ev = (rx_enabled_ ? uint32_t{EPOLLIN} : 0u) | (want_out_ ? uint32_t{EPOLLOUT} : 0u);
  (void)poller_.modify(fd_.get(), ev, 0);
}

void FdBackend::set_rx_enabled(bool on) {
  if (rx_enabled_ == on) return;
  rx_enabled_ = on;
  update_interest();
}

Status FdBackend::set_rx_offloads(const Offloads& o) {
  Offloads eff =
      normalized({o.csum && supported_.csum, o.tso4 && supported_.tso4, o.tso6 && supported_.tso6,
                  o.ecn && supported_.ecn, o.ufo && supported_.ufo});
  QVM_TRY(apply_rx_offloads(eff));
  rx_offloads_ = eff;
  return {};
}

Result<SendResult> FdBackend::send(std::span<const iovec> iov) {
  if (!up_) {
    ++stats_.tx_dropped;
    return SendResult::kDropped;
  }
  SendResult r = send_frame(fd_.get(), is_socket_, iov, stats_);
  if (r == SendResult::kBlocked && !want_out_) {
    want_out_ = true;
    update_interest();
  }
  return r;
}

Result<size_t> FdBackend::receive(std::span<const iovec> iov) {
  if (!up_) return size_t{0};
  RecvOne r = QVM_TRY(recv_frame(fd_.get(), is_socket_, iov, rx_offloads_, stats_));
  if (r.status == RecvStatus::kEof && (hup_seen_ || is_socket_)) go_down();
  return r.status == RecvStatus::kFrame ? r.len : size_t{0};
}

void FdBackend::go_down() {
  if (!up_) return;
  up_ = false;
  ++stats_.link_changes;
  poller_.remove(fd_.get());
}

ServiceResult FdBackend::service() {
  ServiceResult r;
  std::array<epoll_event, 4> evs{};
  size_t n = poller_.wait(evs);
  for (size_t i = 0; i < n; ++i) {
    const uint32_t e = evs[i].events;
    if (e & EPOLLIN) r.rx_ready = true;
    if (e & EPOLLOUT) {
      r.tx_ready = true;
      want_out_ = false;
      update_interest();
    }
    if (e & (EPOLLHUP | EPOLLERR)) {
      // The other end is gone. With rx on, the device reads what is left and receive() sees the
      // end of file; otherwise the link goes down now.
      hup_seen_ = true;
      if (!(e & EPOLLIN) || !rx_enabled_) go_down();
    }
  }
  if (link_reported_ != up_) {
    link_reported_ = up_;
    r.link_changed = true;
  }
  return r;
}

}  // namespace qvm::net
