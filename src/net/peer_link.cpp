// Peer link backend. See peer_link.hpp and docs/networking.md ("Peer link protocol").
#include "net/peer_link.hpp"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "base/log.hpp"
#include "base/runtime_dir.hpp"
#include "net/fd_backend.hpp"
#include "net/soft_offload.hpp"

namespace qvm::net {

namespace {

constexpr char kMagic[8] = {'Q', 'V', 'M', 'N', 'E', 'T', '1', 0};
constexpr uint32_t kMaxBackoffMs = 1000;
constexpr uint32_t kFirstBackoffMs = 10;
constexpr int kSndBuf = 1 << 20;

struct Hello {  // first message on a connection, connector -> acceptor
  char magic[8];
  uint32_t version;
  uint32_t reserved;
  char path[sizeof(sockaddr_un::sun_path)];  // the connector's own endpoint, NUL-terminated
};

Result<sockaddr_un> unix_addr(const std::string& path) {
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof a.sun_path)
    return make_error("socket path '" + path + "' is empty or longer than 107 bytes");
  std::memcpy(a.sun_path, path.c_str(), path.size());
  return a;
}

int connect_to(int fd, const sockaddr_un& a) {
  // SAFETY: sockaddr_un is a sockaddr for the socket API.
  return ::connect(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a);
}

UniqueFd seqpacket() {
  return UniqueFd(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
}

Status check_component(std::string_view what, std::string_view s) {
  if (s.empty() || s == "." || s == ".." || s.find('/') != std::string_view::npos)
    return make_error(std::string(what) + " '" + std::string(s) +
                      "' cannot name a peer endpoint (empty, '.', '..' or contains '/')");
  return {};
}

bool same_file(const std::string& a, const std::string& b) {
  if (a == b) return true;
  struct stat sa {
  }, sb{};
  return ::stat(a.c_str(), &sa) == 0 && ::stat(b.c_str(), &sb) == 0 && sa.st_dev == sb.st_dev &&
         sa.st_ino == sb.st_ino;
}

}  // namespace

std::string runtime_dir() {
  return base::runtime_dir();
}

Result<std::string> resolve_peer_path(std::string_view peer, const std::string& runtime) {
  std::string out;
  for (std::string_view prefix : {"/run/qvm/", "/dev/qvm/"}) {
    if (peer.substr(0, prefix.size()) == prefix) {
      out = runtime + "/" + std::string(peer.substr(prefix.size()));
      break;
    }
  }
  if (out.empty()) {
    if (peer.empty()) return make_error("empty peer path");
    out = peer[0] == '/' ? std::string(peer) : runtime + "/" + std::string(peer);
  }
  QVM_TRY(unix_addr(out));
  return out;
}

Result<std::string> own_endpoint_path(std::string_view system, std::string_view vdev_name,
                                      const std::string& runtime) {
  QVM_TRY(check_component("system name", system));
  QVM_TRY(check_component("vdev name", vdev_name));
  std::string p = runtime + "/" + std::string(system) + "/" + std::string(vdev_name);
  QVM_TRY(unix_addr(p));
  return p;
}

Result<std::unique_ptr<PeerLink>> PeerLink::create(PeerLinkOptions o) {
  QVM_TRY(unix_addr(o.own_path));
  QVM_TRY(unix_addr(o.peer_path));
  if (o.own_path == o.peer_path) return make_error("a peer link cannot name its own endpoint");
  o.offloads = normalized(o.offloads);
  Poller p = QVM_TRY(Poller::create());
  std::unique_ptr<PeerLink> l(new PeerLink(std::move(o), std::move(p)));
  l->timer_.reset(::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
  if (!l->timer_) return Error::from_errno("timerfd_create", errno);
  QVM_TRY(l->poller_.add(l->timer_.get(), EPOLLIN, kTimer));
  QVM_TRY(l->bind_endpoint());
  l->try_connect();
  return l;
}

PeerLink::~PeerLink() {
  // Remove our endpoint only if it is still the socket we bound (not a successor's).
  struct stat sb {};
  if (listen_ && ::lstat(o_.own_path.c_str(), &sb) == 0 && sb.st_ino == bound_ino_)
    ::unlink(o_.own_path.c_str());
}

Status PeerLink::bind_endpoint() {
  const std::string& path = o_.own_path;
  const std::string dir = path.substr(0, path.rfind('/'));
  if (!dir.empty()) {
    QVM_TRY(base::make_dirs(dir, (o_.mode & 077) ? 0755 : 0700));
    // The system's folder and the runtime directory above it (own_endpoint_path).
    QVM_TRY(base::check_own_dir(dir));
    if (const auto up = dir.rfind('/'); up != std::string::npos && up > 0)
      QVM_TRY(base::check_own_dir(dir.substr(0, up)));
  }
  sockaddr_un a = QVM_TRY(unix_addr(path));
  UniqueFd s = seqpacket();
  if (!s) return Error::from_errno("socket", errno);
  // SAFETY: sockaddr_un is a sockaddr for the socket API.
  auto do_bind = [&] { return ::bind(s.get(), reinterpret_cast<const sockaddr*>(&a), sizeof a); };
  if (do_bind() != 0) {
    if (errno != EADDRINUSE) return Error::from_errno("binding peer endpoint " + path, errno);
    struct stat sb {};
    if (::lstat(path.c_str(), &sb) != 0 || !S_ISSOCK(sb.st_mode))
      return make_error("peer endpoint " + path + " exists and is not a socket");
    UniqueFd probe = seqpacket();
    if (!probe) return Error::from_errno("socket", errno);
    if (connect_to(probe.get(), a) == 0 || errno == EAGAIN)
      return make_error("peer endpoint " + path + " is in use by a running qvm");
    if (errno != ECONNREFUSED)
      return Error::from_errno("peer endpoint " + path + " exists and cannot be checked", errno);
    ::unlink(path.c_str());  // nobody listens: a stale file left by a qvm that died
    if (do_bind() != 0) return Error::from_errno("binding peer endpoint " + path, errno);
  }
  if (::chmod(path.c_str(), o_.mode) != 0)
    return Error::from_errno("chmod peer endpoint " + path, errno);
  if (::listen(s.get(), kMaxPending) != 0) return Error::from_errno("listen " + path, errno);
  struct stat sb {};
  if (::lstat(path.c_str(), &sb) == 0) bound_ino_ = sb.st_ino;
  QVM_TRY(poller_.add(s.get(), EPOLLIN, kListen));
  listen_ = std::move(s);
  return {};
}

void PeerLink::arm_retry() {
  itimerspec its{};
  its.it_value.tv_sec = backoff_ms_ / 1000;
  its.it_value.tv_nsec = static_cast<long>(backoff_ms_ % 1000) * 1'000'000;
  (void)::timerfd_settime(timer_.get(), 0, &its, nullptr);
  backoff_ms_ = std::min(backoff_ms_ * 2, kMaxBackoffMs);
}

// Who may be on the other end of a link (SO_PEERCRED: the peer's credentials when it connected or
// bound): root, or qvm's own user; members of qvm's group if `bind-mode` gives the group access,
// anyone if it gives others access. Another user's process cannot receive or inject the guest's
// frames by connecting to, or pre-creating, an endpoint.
bool PeerLink::peer_allowed(int fd, const char* side) {
  ucred cr{};
  socklen_t len = sizeof cr;
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) != 0 || len != sizeof cr) return false;
  const bool ok = cr.uid == 0 || cr.uid == ::geteuid() ||
                  ((o_.mode & 0060) && cr.gid == ::getegid()) || (o_.mode & 0006);
  if (!ok) {
    ++stats_.refused;
    uint64_t supp = 0;
    if (refuse_rl_.allow(std::chrono::steady_clock::now(), &supp))
      log_warn(
          "peer link %s: refused the %s of uid %u gid %u (pid %d): not this user's (bind-mode "
          "%03o) (%llu similar suppressed)",
          o_.own_path.c_str(), side, static_cast<unsigned>(cr.uid), static_cast<unsigned>(cr.gid),
          static_cast<int>(cr.pid), static_cast<unsigned>(o_.mode),
          static_cast<unsigned long long>(supp));
  }
  return ok;
}

void PeerLink::try_connect() {
  if (out_) return;
  auto a = unix_addr(o_.peer_path);
  UniqueFd s = seqpacket();
  if (!a || !s || connect_to(s.get(), *a) != 0) {
    arm_retry();  // ENOENT / ECONNREFUSED / EAGAIN: the peer is not (yet) there
    return;
  }
  if (!peer_allowed(s.get(), "endpoint")) {
    arm_retry();
    return;
  }
  Hello h{};
  std::memcpy(h.magic, kMagic, sizeof h.magic);
  h.version = kVersion;
  std::memcpy(h.path, o_.own_path.c_str(), std::min(o_.own_path.size(), sizeof h.path - 1));
  int sb = kSndBuf;
  (void)::setsockopt(s.get(), SOL_SOCKET, SO_SNDBUF, &sb, sizeof sb);
  if (::send(s.get(), &h, sizeof h, MSG_NOSIGNAL) != static_cast<ssize_t>(sizeof h) ||
      !poller_.add(s.get(), 0, kOut)) {
    arm_retry();
    return;
  }
  out_ = std::move(s);
  want_out_ = false;
  backoff_ms_ = kFirstBackoffMs;
  ++stats_.connects;
}

void PeerLink::drop_out() {
  poller_.remove(out_.get());
  out_.reset();
  want_out_ = false;
  backoff_ms_ = kFirstBackoffMs;
  arm_retry();
}

void PeerLink::drop_in() {
  poller_.remove(in_.get());
  in_.reset();
  soft_frames_.clear();  // completed frames of a connection that is gone
  soft_next_ = 0;
}

void PeerLink::update_in_interest() {
  if (in_) (void)poller_.modify(in_.get(), rx_enabled_ ? uint32_t{EPOLLIN} : 0u, kIn);
}

void PeerLink::set_rx_enabled(bool on) {
  if (rx_enabled_ == on) return;
  rx_enabled_ = on;
  update_in_interest();
}

void PeerLink::accept_all() {
  for (int i = 0; i < 2 * kMaxPending; ++i) {
    UniqueFd c(::accept4(listen_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (!c) return;  // EAGAIN, or an error on that connection only
    const size_t slot = next_pending_;
    next_pending_ = (next_pending_ + 1) % kMaxPending;
    if (pending_[slot]) poller_.remove(pending_[slot].get());  // the oldest waiter makes room
    pending_[slot] = std::move(c);
    if (!poller_.add(pending_[slot].get(), EPOLLIN, kPending + slot)) {
      pending_[slot].reset();
      continue;
    }
    read_hello(slot);
  }
}

void PeerLink::read_hello(size_t slot) {
  UniqueFd& c = pending_[slot];
  if (!c) return;
  Hello h{};
  ssize_t n = ::recv(c.get(), &h, sizeof h, MSG_DONTWAIT);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;  // not there yet
  const bool ok = n == static_cast<ssize_t>(sizeof h) && peer_allowed(c.get(), "connection") &&
                  std::memcmp(h.magic, kMagic, sizeof kMagic) == 0 && h.version == kVersion &&
                  std::memchr(h.path, 0, sizeof h.path) != nullptr &&
                  same_file(std::string(h.path), o_.peer_path);
  poller_.remove(c.get());
  if (!ok) {
    c.reset();  // not our peer (or a broken one): hang up
    return;
  }
  if (in_) drop_in();  // the peer restarted: its new connection wins
  in_ = std::move(c);
  if (!poller_.add(in_.get(), rx_enabled_ ? uint32_t{EPOLLIN} : 0u, kIn)) in_.reset();
}

Status PeerLink::set_rx_offloads(const Offloads& o) {
  rx_offloads_ =
      normalized({o.csum && o_.offloads.csum, o.tso4 && o_.offloads.tso4,
                  o.tso6 && o_.offloads.tso6, o.ecn && o_.offloads.ecn, o.ufo && o_.offloads.ufo});
  soft_frames_.clear();  // completed for what the guest took before
  soft_next_ = 0;
  return {};
}

Result<SendResult> PeerLink::send(std::span<const iovec> iov) {
  if (!out_) {
    ++stats_.tx_dropped;
    return SendResult::kDropped;
  }
  SendResult r = send_frame(out_.get(), true, iov, stats_);
  if (r == SendResult::kBlocked && !want_out_) {
    want_out_ = true;
    (void)poller_.modify(out_.get(), EPOLLOUT, kOut);
  }
  return r;
}

Result<size_t> PeerLink::receive(std::span<const iovec> iov) {
  if (!in_) return size_t{0};
  if (soft_next_ < soft_frames_.size()) return deliver_soft(iov);
  if (soft_offload_possible()) return receive_soft(iov);
  auto r = recv_frame(in_.get(), true, iov, rx_offloads_, stats_);
  if (!r || r->status == RecvStatus::kEof) {
    drop_in();
    return size_t{0};
  }
  return r->status == RecvStatus::kFrame ? r->len : size_t{0};
}

ServiceResult PeerLink::service() {
  ServiceResult r;
  std::array<epoll_event, 16> evs{};
  const size_t n = poller_.wait(evs);
  for (size_t i = 0; i < n; ++i) {
    const uint32_t e = evs[i].events;
    const uint64_t tag = evs[i].data.u64;
    if (tag == kListen) {
      accept_all();
    } else if (tag == kTimer) {
      uint64_t exp = 0;
      (void)!::read(timer_.get(), &exp, sizeof exp);
      try_connect();
    } else if (tag == kOut && out_) {
      if (e & (EPOLLHUP | EPOLLERR)) {
        drop_out();
      } else if (e & EPOLLOUT) {
        r.tx_ready = true;
        want_out_ = false;
        (void)poller_.modify(out_.get(), 0, kOut);
      }
    } else if (tag == kIn && in_) {
      if (e & EPOLLIN)
        r.rx_ready = true;  // receive() sees the end of file after a hang-up
      else if (e & (EPOLLHUP | EPOLLERR))
        drop_in();
    } else if (tag >= kPending && tag < kPending + kMaxPending) {
      read_hello(static_cast<size_t>(tag - kPending));
    }
  }
  if (link_reported_ != link_up()) {
    link_reported_ = link_up();
    ++stats_.link_changes;
    r.link_changed = true;
  }
  return r;
}

}  // namespace qvm::net
