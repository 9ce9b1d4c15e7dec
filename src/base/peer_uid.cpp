#include "base/peer_uid.hpp"

#include <arpa/inet.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>

#include "base/unique_fd.hpp"

namespace qvm {

bool tcp_peer_is_loopback(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return false;  // NOLINT
  if (ss.ss_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&ss);  // NOLINT: family checked
    return (ntohl(a->sin_addr.s_addr) >> 24) == 127;
  }
  if (ss.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);  // NOLINT: family checked
    if (IN6_IS_ADDR_LOOPBACK(&a->sin6_addr)) return true;
    return IN6_IS_ADDR_V4MAPPED(&a->sin6_addr) && a->sin6_addr.s6_addr[12] == 127;
  }
  return false;
}

namespace {

// /proc/net/tcp{,6}'s spelling of an address (net/ipv4/tcp_ipv4.c, net/ipv6/tcp_ipv6.c): each
// 32-bit word of the address as the CPU holds it, %08X, then ':' and the port %04X.
std::string proc_addr(const sockaddr_storage& ss) {
  char b[64];
  if (ss.ss_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&ss);  // NOLINT
    uint32_t w;
    std::memcpy(&w, &a->sin_addr, 4);
    std::snprintf(b, sizeof b, "%08X:%04X", w, ntohs(a->sin_port));
    return b;
  }
  const auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);  // NOLINT
  uint32_t w[4];
  std::memcpy(w, &a->sin6_addr, 16);
  std::snprintf(b, sizeof b, "%08X%08X%08X%08X:%04X", w[0], w[1], w[2], w[3], ntohs(a->sin6_port));
  return b;
}

// Where sock_diag is missing (inet_diag a module nobody can load): the kernel's socket table,
// whose row for the peer's socket has local = our peer, remote = us, and its owner's uid.
Result<uid_t> uid_from_proc(const sockaddr_storage& local, const sockaddr_storage& peer) {
  const char* path = local.ss_family == AF_INET ? "/proc/net/tcp" : "/proc/net/tcp6";
  FILE* f = std::fopen(path, "re");
  if (!f) return Error::from_errno(path, errno);
  const std::string want_local = proc_addr(peer), want_remote = proc_addr(local);
  char line[512];
  std::optional<uid_t> found;
  while (!found && std::fgets(line, sizeof line, f)) {
    char l[80], r[80];
    unsigned st = 0, uid = 0;
    // sl local rem st tx:rx tr:when retrnsmt uid
    if (std::sscanf(line, " %*[^:]: %79s %79s %x %*s %*s %*s %u", l, r, &st, &uid) == 4 &&
        want_local == l && want_remote == r)
      found = static_cast<uid_t>(uid);
  }
  std::fclose(f);
  if (!found) return make_error(std::string(path) + ": no row for the peer's socket");
  return *found;
}

Result<uid_t> uid_from_sock_diag(const sockaddr_storage& local, const sockaddr_storage& peer);

}  // namespace

Result<uid_t> loopback_tcp_peer_uid(int fd, PeerUidSource source) {
  sockaddr_storage local{}, peer{};
  socklen_t ll = sizeof local, pl = sizeof peer;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &ll) != 0 ||  // NOLINT
      ::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &pl) != 0)     // NOLINT
    return Error::from_errno("getpeername", errno);
  if (local.ss_family != AF_INET && local.ss_family != AF_INET6)
    return make_error("not a TCP/IP socket");
  if (source == PeerUidSource::kProcNet) return uid_from_proc(local, peer);
  auto u = uid_from_sock_diag(local, peer);
  if (u || source == PeerUidSource::kSockDiag) return u;
  auto p = uid_from_proc(local, peer);
  if (p) return p;
  return make_error(u.error().message + "; " + p.error().message);
}

namespace {

Result<uid_t> uid_from_sock_diag(const sockaddr_storage& local, const sockaddr_storage& peer) {
  struct {
    nlmsghdr nh;
    inet_diag_req_v2 req;
  } msg{};
  msg.nh.nlmsg_len = sizeof msg;
  msg.nh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  msg.nh.nlmsg_flags = NLM_F_REQUEST;
  msg.req.sdiag_family = static_cast<uint8_t>(local.ss_family);
  msg.req.sdiag_protocol = IPPROTO_TCP;
  msg.req.idiag_states = ~0u;
  // The peer's socket: its source is our peer address, its destination our local address.
  inet_diag_sockid& id = msg.req.id;
  id.idiag_cookie[0] = INET_DIAG_NOCOOKIE;
  id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
  if (local.ss_family == AF_INET) {
    const auto* l = reinterpret_cast<const sockaddr_in*>(&local);  // NOLINT
    const auto* p = reinterpret_cast<const sockaddr_in*>(&peer);   // NOLINT
    id.idiag_sport = p->sin_port;
    id.idiag_dport = l->sin_port;
    std::memcpy(id.idiag_src, &p->sin_addr, 4);
    std::memcpy(id.idiag_dst, &l->sin_addr, 4);
  } else if (local.ss_family == AF_INET6) {
    const auto* l = reinterpret_cast<const sockaddr_in6*>(&local);  // NOLINT
    const auto* p = reinterpret_cast<const sockaddr_in6*>(&peer);   // NOLINT
    id.idiag_sport = p->sin6_port;
    id.idiag_dport = l->sin6_port;
    std::memcpy(id.idiag_src, &p->sin6_addr, 16);
    std::memcpy(id.idiag_dst, &l->sin6_addr, 16);
  } else {
    return make_error("not a TCP/IP socket");
  }
  UniqueFd nl(::socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG));
  if (!nl) return Error::from_errno("sock_diag socket", errno);
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  if (::sendto(nl.get(), &msg, sizeof msg, 0, reinterpret_cast<sockaddr*>(&kernel),  // NOLINT
               sizeof kernel) < 0)
    return Error::from_errno("sock_diag request", errno);
  alignas(nlmsghdr) char buf[8192];
  timeval tv{2, 0};
  ::setsockopt(nl.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ssize_t n = ::recv(nl.get(), buf, sizeof buf, 0);
  if (n < 0) return Error::from_errno("sock_diag reply", errno);
  // Walked by hand: the NLMSG_* macros use C casts (-Wold-style-cast).
  size_t off = 0;
  const size_t total = static_cast<size_t>(n);
  while (off + sizeof(nlmsghdr) <= total) {
    nlmsghdr h;
    std::memcpy(&h, buf + off, sizeof h);
    if (h.nlmsg_len < sizeof h || off + h.nlmsg_len > total) break;
    const char* data = buf + off + NLMSG_ALIGN(sizeof h);
    const size_t dlen = h.nlmsg_len - NLMSG_ALIGN(sizeof h);
    if (h.nlmsg_type == NLMSG_ERROR && dlen >= sizeof(nlmsgerr)) {
      nlmsgerr e;
      std::memcpy(&e, data, sizeof e);
      return Error::from_errno("sock_diag", -e.error);
    }
    if (h.nlmsg_type == SOCK_DIAG_BY_FAMILY && dlen >= sizeof(inet_diag_msg)) {
      inet_diag_msg m;
      std::memcpy(&m, data, sizeof m);
      return static_cast<uid_t>(m.idiag_uid);
    }
    off += NLMSG_ALIGN(h.nlmsg_len);
  }
  return make_error("sock_diag: no answer for the peer's socket");
}

}  // namespace

}  // namespace qvm
