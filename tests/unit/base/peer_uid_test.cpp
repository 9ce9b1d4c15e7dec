// The uid behind a loopback TCP connection (src/base/peer_uid.*), on real sockets.
#include "base/peer_uid.hpp"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/unique_fd.hpp"

namespace qvm {
namespace {

struct Pair {
  UniqueFd listener, client, server;
};

Pair connect_pair(int family) {
  Pair p;
  p.listener.reset(::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_storage ss{};
  socklen_t len = 0;
  if (family == AF_INET) {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    a->sin_family = AF_INET;
    a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    len = sizeof *a;
  } else {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    a->sin6_family = AF_INET6;
    a->sin6_addr = in6addr_loopback;
    len = sizeof *a;
  }
  EXPECT_EQ(::bind(p.listener.get(), reinterpret_cast<sockaddr*>(&ss), len), 0);
  EXPECT_EQ(::listen(p.listener.get(), 1), 0);
  EXPECT_EQ(::getsockname(p.listener.get(), reinterpret_cast<sockaddr*>(&ss), &len), 0);
  p.client.reset(::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  EXPECT_EQ(::connect(p.client.get(), reinterpret_cast<sockaddr*>(&ss), len), 0);
  p.server.reset(::accept4(p.listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
  return p;
}

TEST(PeerUid, ALoopbackTcpPeerIsThisUser) {
  for (int family : {AF_INET, AF_INET6}) {
    Pair p = connect_pair(family);
    ASSERT_TRUE(p.server) << family;
    EXPECT_TRUE(tcp_peer_is_loopback(p.server.get()));
    for (auto src : {PeerUidSource::kAny, PeerUidSource::kSockDiag, PeerUidSource::kProcNet}) {
      auto uid = loopback_tcp_peer_uid(p.server.get(), src);
      ASSERT_TRUE(uid) << uid.error().message;
      EXPECT_EQ(*uid, ::geteuid());
    }
  }
}

TEST(PeerUid, ItIsThePeersUidNotOurs) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to own a socket as another uid";
  // A socket belongs to the euid that created it: the client is created as uid 65534.
  Pair p;
  p.listener.reset(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  ASSERT_EQ(::bind(p.listener.get(), reinterpret_cast<sockaddr*>(&a), len), 0);
  ASSERT_EQ(::listen(p.listener.get(), 1), 0);
  ASSERT_EQ(::getsockname(p.listener.get(), reinterpret_cast<sockaddr*>(&a), &len), 0);
  ASSERT_EQ(::seteuid(65534), 0);
  p.client.reset(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  ASSERT_EQ(::seteuid(0), 0);
  ASSERT_EQ(::connect(p.client.get(), reinterpret_cast<sockaddr*>(&a), len), 0);
  p.server.reset(::accept4(p.listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
  for (auto src : {PeerUidSource::kSockDiag, PeerUidSource::kProcNet}) {
    auto uid = loopback_tcp_peer_uid(p.server.get(), src);
    ASSERT_TRUE(uid) << uid.error().message;
    EXPECT_EQ(*uid, 65534u);
  }
}

TEST(PeerUid, NotATcpSocket) {
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  UniqueFd a(sv[0]), b(sv[1]);
  EXPECT_FALSE(tcp_peer_is_loopback(a.get()));
  EXPECT_FALSE(loopback_tcp_peer_uid(a.get()));
}

}  // namespace
}  // namespace qvm
