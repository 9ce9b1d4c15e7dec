// Peer links (spec §12.1 guest <-> guest): two backends over a temporary runtime directory,
// either side first, 100 restarts without fd leaks, stale endpoints, strangers.
#include "net/peer_link.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <cstring>
#include <string>

#include "net_test_util.hpp"
#include "tcp_frames.hpp"

namespace qvm::net::testing {
namespace {

struct PeerTest : ::testing::Test {
  std::string dir;
  void SetUp() override {
    char t[] = "/tmp/qvm-peer-XXXXXX";
    ASSERT_NE(::mkdtemp(t), nullptr);
    dir = t;
  }
  void TearDown() override {
    std::string cmd = "rm -rf '" + dir + "'";
    (void)!std::system(cmd.c_str());
  }
  std::string path(const std::string& sys) { return dir + "/" + sys + "/net0"; }
  Result<std::unique_ptr<PeerLink>> create(const std::string& self, const std::string& other) {
    PeerLinkOptions o;
    o.own_path = path(self);
    o.peer_path = path(other);
    return PeerLink::create(o);
  }
  std::unique_ptr<PeerLink> link(const std::string& self, const std::string& other) {
    PeerLinkOptions o;
    o.own_path = path(self);
    o.peer_path = path(other);
    auto r = PeerLink::create(o);
    EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
    if (!r.ok()) return nullptr;
    (*r)->set_rx_enabled(true);
    return std::move(*r);
  }
};

std::vector<uint8_t> framed(uint8_t seed) {
  return with_hdr(VnetHdr{}, eth_frame(100, seed));
}

// spec §12.1 runtime directories: a directory another user created first, one writable by others,
// or a symbolic link is refused before any socket is bound in it.
TEST_F(PeerTest, RuntimeDirectoryOfAnotherUserIsRefused) {
  const std::string sys = dir + "/a";
  ASSERT_EQ(::mkdir(sys.c_str(), 0700), 0);
  ASSERT_EQ(::chown(sys.c_str(), ::geteuid() + 4242, static_cast<gid_t>(-1)),
            0);  // tests run as root
  auto r = create("a", "b");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("belongs to uid"), std::string::npos) << r.error().message;
  struct stat sb {};
  EXPECT_NE(::lstat(path("a").c_str(), &sb), 0);  // nothing was bound there
}

// SO_PEERCRED: an endpoint another user's process listens on (at a peer path outside qvm's own
// runtime directory) is not connected to, so the guest's frames never reach it.
TEST_F(PeerTest, AnEndpointOfAnotherUserIsRefused) {
  ASSERT_EQ(::chmod(dir.c_str(), 0711), 0);  // others may traverse, not write
  const std::string evil = dir + "/evil";
  ASSERT_EQ(::mkdir(evil.c_str(), 0700), 0);
  ASSERT_EQ(::chown(evil.c_str(), 4242, 4242), 0);  // tests run as root
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {  // another user listening where our peer is expected
    if (::setgid(4242) != 0 || ::setuid(4242) != 0) ::_exit(1);
    int s = ::socket(AF_UNIX, SOCK_SEQPACKET, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    const std::string p = path("evil");
    std::memcpy(a.sun_path, p.c_str(), p.size() + 1);
    if (::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(s, 4) != 0)
      ::_exit(2);
    (void)!::write(ready[1], "x", 1);
    ::sleep(3);
    ::_exit(0);
  }
  char c = 0;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  ::close(ready[0]);
  ::close(ready[1]);
  auto a = link("a", "evil");
  ASSERT_TRUE(a);
  for (int i = 0; i < 50 && a->stats().refused == 0; ++i) {
    (void)a->service();
    ::usleep(20000);
  }
  EXPECT_GE(a->stats().refused, 1u);
  EXPECT_FALSE(a->outgoing_connected());
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
}

TEST_F(PeerTest, RuntimeDirectoryWritableByOthersIsRefused) {
  ASSERT_EQ(::chmod(dir.c_str(), 0777), 0);
  auto r = create("a", "b");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("writable by others"), std::string::npos) << r.error().message;
}

TEST_F(PeerTest, RuntimeDirectoryThatIsASymlinkIsRefused) {
  const std::string elsewhere = dir + "/elsewhere";
  ASSERT_EQ(::mkdir(elsewhere.c_str(), 0700), 0);
  ASSERT_EQ(::symlink(elsewhere.c_str(), (dir + "/a").c_str()), 0);
  auto r = create("a", "b");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("symbolic link"), std::string::npos) << r.error().message;
  struct stat sb {};
  EXPECT_NE(::lstat((elsewhere + "/net0").c_str(), &sb), 0);
}

TEST_F(PeerTest, BothWaysAndEitherSideFirst) {
  auto a = link("a", "b");
  ASSERT_TRUE(a);
  EXPECT_FALSE(a->link_up());
  EXPECT_EQ(send_bytes(*a, framed(1)), SendResult::kDropped);  // nobody there yet
  EXPECT_EQ(a->stats().tx_dropped, 1u);
  struct stat sb {};
  ASSERT_EQ(::stat(path("a").c_str(), &sb), 0);
  EXPECT_EQ(sb.st_mode & 0777, 0600u);
  auto b = link("b", "a");
  ASSERT_TRUE(b);
  std::vector<std::vector<std::vector<uint8_t>>> rx;
  ASSERT_TRUE(pump({a.get(), b.get()}, rx, [&] { return a->link_up() && b->link_up(); }));
  EXPECT_EQ(send_bytes(*a, framed(2)), SendResult::kSent);
  EXPECT_EQ(send_bytes(*b, framed(3)), SendResult::kSent);
  ASSERT_TRUE(pump({a.get(), b.get()}, rx, [&] { return rx[0].size() == 1 && rx[1].size() == 1; }));
  EXPECT_EQ(rx[1][0], framed(2));
  EXPECT_EQ(rx[0][0], framed(3));
}

TEST_F(PeerTest, HundredRestartsNoLeaks) {
  auto a = link("a", "b");
  ASSERT_TRUE(a);
  std::vector<std::vector<std::vector<uint8_t>>> rx;
  size_t before = 0;
  for (int i = 0; i < 101; ++i) {
    if (i == 1) before = count_fds();  // after the first cycle: the steady state
    auto b = link("b", "a");
    ASSERT_TRUE(b);
    rx.clear();
    ASSERT_TRUE(pump({a.get(), b.get()}, rx, [&] { return a->link_up() && b->link_up(); }))
        << "cycle " << i;
    ASSERT_EQ(send_bytes(*a, framed(static_cast<uint8_t>(i))), SendResult::kSent);
    ASSERT_EQ(send_bytes(*b, framed(static_cast<uint8_t>(i + 1))), SendResult::kSent);
    ASSERT_TRUE(
        pump({a.get(), b.get()}, rx, [&] { return rx[0].size() == 1 && rx[1].size() == 1; }))
        << "cycle " << i;
    EXPECT_EQ(rx[1][0], framed(static_cast<uint8_t>(i)));
    b.reset();  // the peer qvm exits
    ASSERT_TRUE(pump({a.get()}, rx, [&] { return !a->link_up(); })) << "cycle " << i;
  }
  EXPECT_EQ(count_fds(), before);
  EXPECT_GE(a->stats().connects, 101u);
}

// The sending guest negotiated checksum and TSO offloads, the receiving one none (e.g. a
// minimal RTOS next to Linux): the receiver gets MTU-sized segments with complete checksums,
// read through buffers as small as that guest posts (the super-frame spills over).
TEST_F(PeerTest, OffloadsTheReceiverDidNotNegotiateAreDoneInSoftware) {
  auto a = link("a", "b");
  auto b = link("b", "a");
  ASSERT_TRUE(a && b);
  std::vector<std::vector<std::vector<uint8_t>>> rx;
  ASSERT_TRUE(pump({a.get(), b.get()}, rx, [&] { return a->link_up() && b->link_up(); }));
  ASSERT_TRUE(b->set_rx_offloads({}).ok());
  auto t = tcp_frame(true, false, 20000, 0x18, 1000);  // ACK PSH
  ASSERT_EQ(send_bytes(*a, with_hdr(gso(kGsoTcpV4, 1448, t), t.f)), SendResult::kSent);
  // A checksum-only frame too: UDP with the pseudo-header sum in the field.
  Bytes u(t.f.begin(), t.f.begin() + static_cast<long>(t.l4));
  u[t.l3 + 9] = 17;
  u.insert(u.end(), {0x13, 0x88, 0x13, 0x89, 0, 12, 0, 0, 1, 2, 3, 4});
  Bytes ph(u.begin() + static_cast<long>(t.l3 + 12), u.begin() + static_cast<long>(t.l3 + 20));
  ph.insert(ph.end(), {0, 17, 0, 12});
  put16(u, t.l4 + 6, ref_sum(ph));
  VnetHdr uh{};
  uh.flags = kHdrFlagNeedsCsum;
  uh.csum_start = static_cast<uint16_t>(t.l4);
  uh.csum_offset = 6;
  ASSERT_EQ(send_bytes(*a, with_hdr(uh, u)), SendResult::kSent);

  std::vector<Bytes> got;
  Bytes payload;
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(3);
  while (got.size() < 15 && std::chrono::steady_clock::now() < end) {
    (void)readable(b->poll_fd(), 5);
    (void)b->service();
    VnetHdr h{};
    Bytes buf(1514);
    const iovec v[] = {{&h, sizeof h}, {buf.data(), buf.size()}};
    auto n = b->receive(v);
    ASSERT_TRUE(n.ok());
    if (*n == 0) continue;
    EXPECT_EQ(h.flags, 0);  // nothing left for the guest to do, nothing claimed
    EXPECT_EQ(h.gso_type, kGsoNone);
    buf.resize(*n - sizeof h);
    got.push_back(buf);
  }
  ASSERT_EQ(got.size(), 15u);  // 14 segments of <= 1448 bytes, then the UDP frame
  for (size_t i = 0; i < 14; ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(be32(got[i], t.l4 + 4), 1000 + 1448 * i);
    EXPECT_EQ(ref_sum(pseudo_and_l4(got[i], t.l3, t.l4, true, 6)), 0xffff);
    payload.insert(payload.end(), got[i].begin() + static_cast<long>(t.l4 + 20), got[i].end());
  }
  EXPECT_EQ(payload, t.payload);
  EXPECT_EQ(ref_sum(pseudo_and_l4(got[14], t.l3, t.l4, true, 17)), 0xffff);
  EXPECT_EQ(b->stats().rx_soft_offload, 2u);
  EXPECT_EQ(b->stats().rx_dropped, 0u);

  // A guest that takes the offloads gets the frame as sent.
  ASSERT_TRUE(b->set_rx_offloads({true, true, true, true, true}).ok());
  const Bytes sent = with_hdr(gso(kGsoTcpV4, 1448, t), t.f);
  ASSERT_EQ(send_bytes(*a, sent), SendResult::kSent);
  rx.clear();
  ASSERT_TRUE(pump({a.get(), b.get()}, rx, [&] { return rx[1].size() == 1; }));
  EXPECT_EQ(rx[1][0], sent);
}

TEST_F(PeerTest, StaleEndpointIsReplacedLiveOneIsNot) {
  // A socket file nobody listens on (a qvm that died).
  ::mkdir((dir + "/a").c_str(), 0700);
  {
    UniqueFd s(::socket(AF_UNIX, SOCK_SEQPACKET, 0));
    sockaddr_un u{};
    u.sun_family = AF_UNIX;
    std::strcpy(u.sun_path, path("a").c_str());
    // SAFETY: sockaddr_un is a sockaddr for the socket API.
    ASSERT_EQ(::bind(s.get(), reinterpret_cast<sockaddr*>(&u), sizeof u), 0);
  }
  auto a = link("a", "b");
  ASSERT_TRUE(a);
  PeerLinkOptions o;
  o.own_path = path("a");
  o.peer_path = path("c");
  auto dup = PeerLink::create(o);
  ASSERT_FALSE(dup.ok());
  EXPECT_NE(dup.error().message.find("in use"), std::string::npos);
  // A regular file is never deleted.
  ::mkdir((dir + "/f").c_str(), 0700);
  UniqueFd f(::open(path("f").c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600));
  o.own_path = path("f");
  auto nf = PeerLink::create(o);
  ASSERT_FALSE(nf.ok());
  EXPECT_NE(nf.error().message.find("not a socket"), std::string::npos);
  a.reset();
  struct stat sb {};
  EXPECT_NE(::stat(path("a").c_str(), &sb), 0);  // removed on exit
}

TEST_F(PeerTest, StrangersAndWrongHelloAreRefused) {
  auto a = link("a", "b");
  ASSERT_TRUE(a);
  auto c = link("c", "a");  // names a, but a expects b
  ASSERT_TRUE(c);
  UniqueFd raw(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  sockaddr_un u{};
  u.sun_family = AF_UNIX;
  std::strcpy(u.sun_path, path("a").c_str());
  // SAFETY: sockaddr_un is a sockaddr for the socket API.
  ASSERT_EQ(::connect(raw.get(), reinterpret_cast<sockaddr*>(&u), sizeof u), 0);
  ASSERT_EQ(::send(raw.get(), "garbage", 7, 0), 7);
  std::vector<std::vector<std::vector<uint8_t>>> rx;
  (void)pump(
      {a.get(), c.get()}, rx, [] { return false; }, std::chrono::milliseconds(200));
  EXPECT_FALSE(a->incoming_connected());
  EXPECT_FALSE(a->link_up());
}

TEST(PeerPaths, Resolution) {
  EXPECT_EQ(*resolve_peer_path("/run/qvm/sys/n", "/rt"), "/rt/sys/n");
  EXPECT_EQ(*resolve_peer_path("/dev/qvm/sys/n", "/rt"), "/rt/sys/n");
  EXPECT_EQ(*resolve_peer_path("sys/n", "/rt"), "/rt/sys/n");
  EXPECT_EQ(*resolve_peer_path("/x/y", "/rt"), "/x/y");
  EXPECT_FALSE(resolve_peer_path("", "/rt").ok());
  EXPECT_FALSE(resolve_peer_path("/" + std::string(200, 'x'), "/rt").ok());
  EXPECT_EQ(*own_endpoint_path("sys", "net0", "/rt"), "/rt/sys/net0");
  EXPECT_FALSE(own_endpoint_path("s/y", "n", "/rt").ok());
  EXPECT_FALSE(own_endpoint_path("..", "n", "/rt").ok());
  EXPECT_FALSE(own_endpoint_path("s", "", "/rt").ok());
}

}  // namespace
}  // namespace qvm::net::testing
