#include "base/peer_uid.hpp"

#include <arpa/inet.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

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

Result<uid_t> loopback_tcp_peer_uid(int fd) {
  sockaddr_storage local{}, peer{};
  socklen_t ll = sizeof local, pl = sizeof peer;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &ll) != 0 ||  // NOLINT
      ::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &pl) != 0)     // NOLINT
    return Error::from_errno("getpeername", errno);
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

}  // namespace qvm
