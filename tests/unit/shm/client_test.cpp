// Clients of one region (shm/client.hpp): slots, shared data, the control page's status, notify
// and its doorbells (the interrupt sink), attach/detach seen by the others, crashes, limits and
// 10,000 attach/detach cycles without a leak. Every "process" here is a Client in this process:
// they share nothing but the region file and the sockets, as separate processes would.
#include "shm/client.hpp"

#include <dirent.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "temp_dir.hpp"

namespace qvm::shm {
namespace {

using test::TempDir;

std::unique_ptr<Client> attach(const std::string& dir, const char* name, uint32_t pages = 4,
                               bool create = true) {
  ClientOptions o;
  o.dir = dir;
  o.pages = pages;
  o.create = create;
  auto r = Client::attach(name, o);
  EXPECT_TRUE(r) << r.error().message;
  return r ? std::move(*r) : nullptr;
}

// Serves every client's sockets until `done` or 2 s.
template <typename Pred>
bool pump(std::vector<Client*> cs, Pred done) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (std::chrono::steady_clock::now() < until) {
    for (Client* c : cs) c->service();
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return false;
}

// Reads (and so clears) a doorbell: how many times it was rung since.
uint64_t rings(const Client& c) {
  uint64_t v = 0;
  if (::read(c.doorbell_fd(), &v, sizeof v) != sizeof v) return 0;
  return v;
}

size_t open_fds() {
  size_t n = 0;
  DIR* d = ::opendir("/proc/self/fd");
  while (d && ::readdir(d)) ++n;
  if (d) ::closedir(d);
  return n;
}

// Mappings of region files under `dir` (the allocator's own mappings come and go).
size_t mappings(const std::string& dir) {
  std::ifstream f("/proc/self/maps");
  size_t n = 0;
  for (std::string l; std::getline(f, l);) n += l.find(dir) != std::string::npos;
  return n;
}

TEST(ShmClient, TwoClientsShareDataAndSeeEachOther) {
  TempDir d;
  auto a = attach(d.path(), "r", 4);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->index(), 0u);
  EXPECT_EQ(a->read_status(), 1u << 16);
  auto b = attach(d.path(), "r", 99);  // exists: the creator's size wins
  ASSERT_TRUE(b);
  EXPECT_EQ(b->index(), 1u);
  EXPECT_EQ(b->pages(), 4u);
  std::memcpy(a->data().data() + 4096, "hello", 6);
  EXPECT_STREQ(reinterpret_cast<const char*>(b->data().data() + 4096), "hello");
  // A learns of B through B's hello: its doorbell rings and status shows both.
  ASSERT_TRUE(pump({a.get(), b.get()}, [&] { return a->wants_interrupt(); }));
  EXPECT_GE(rings(*a), 1u);
  EXPECT_EQ(a->read_status(), 3u << 16);
  EXPECT_FALSE(a->wants_interrupt());
}

TEST(ShmClient, NotifySetsTheSendersBitAndRingsTheTarget) {
  TempDir d;
  auto a = attach(d.path(), "n");
  auto b = attach(d.path(), "n");
  auto c = attach(d.path(), "n");
  ASSERT_TRUE(a && b && c);
  // Wait until every doorbell has been exchanged (each pair's hello and reply).
  ASSERT_TRUE(pump({a.get(), b.get(), c.get()},
                   [&] { return a->stats().peer_changes == 2 && b->stats().peer_changes == 1; }));
  for (Client* x : {a.get(), b.get(), c.get()}) {
    (void)rings(*x);
    (void)x->read_status();
  }
  b->notify(1u << 0);  // B -> A
  EXPECT_EQ(rings(*a), 1u);
  EXPECT_EQ(rings(*c), 0u);
  EXPECT_EQ(a->read_status(), (1u << 1) | (7u << 16));
  EXPECT_EQ(a->read_status(), 7u << 16);  // reading cleared it
  a->notify(Client::kAllButMe);
  EXPECT_EQ(rings(*a), 0u);
  EXPECT_EQ(rings(*b), 1u);
  EXPECT_EQ(rings(*c), 1u);
  EXPECT_EQ(b->read_status() & 0xffff, 1u);
  EXPECT_EQ(c->read_status() & 0xffff, 1u);
  // Bits of clients that are not attached are ignored; a client may notify itself.
  c->notify(1u << 9);
  EXPECT_EQ(a->pending() | b->pending(), 0u);
  c->notify(1u << 2);
  EXPECT_EQ(rings(*c), 1u);
  EXPECT_EQ(c->read_status() & 0xffff, 1u << 2);
}

TEST(ShmClient, DetachAndCrashAreSeenAndFreeTheSlot) {
  TempDir d;
  auto a = attach(d.path(), "x");
  auto b = attach(d.path(), "x");
  ASSERT_TRUE(pump({a.get(), b.get()}, [&] { return a->wants_interrupt(); }));
  (void)a->read_status();
  (void)rings(*a);
  b.reset();  // clean detach
  ASSERT_TRUE(pump({a.get()}, [&] { return a->wants_interrupt(); }));
  EXPECT_EQ(a->read_status(), 1u << 16);
  // A child process attaches and dies without detaching: the kernel drops its slot lock and
  // socket; A notices and reaps the slot.
  const pid_t pid = ::fork();
  if (pid == 0) {
    ClientOptions o;
    o.dir = d.path();
    o.create = false;
    auto r = Client::attach("x", o);
    if (!r) ::_exit(1);
    (void)r->release();  // no destructor: as if killed
    ::_exit(0);
  }
  int st = 0;
  ASSERT_EQ(::waitpid(pid, &st, 0), pid);
  ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  ASSERT_TRUE(pump({a.get()}, [&] { return (a->attached() & 2u) == 0 && a->wants_interrupt(); }));
  // The next client takes the freed slot 1.
  auto c = attach(d.path(), "x");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->index(), 1u);
}

TEST(ShmClient, SixteenClientsThenClientMax) {
  TempDir d;
  std::vector<std::unique_ptr<Client>> cs;
  for (uint32_t i = 0; i < kMaxClients; ++i) {
    cs.push_back(attach(d.path(), "full", 1));
    ASSERT_TRUE(cs.back());
    EXPECT_EQ(cs.back()->index(), i);
  }
  ClientOptions o;
  o.dir = d.path();
  auto r = Client::attach("full", o);
  ASSERT_FALSE(r);
  EXPECT_EQ(gss_from(r.error()), Gss::kClientMax);
}

TEST(ShmClient, TheLastClientRemovesTheRegionAndItsSockets) {
  TempDir d;
  {
    auto a = attach(d.path(), "gone");
    auto b = attach(d.path(), "gone");
    ASSERT_TRUE(a && b);
  }
  DIR* dir = ::opendir(d.path().c_str());
  ASSERT_TRUE(dir);
  std::vector<std::string> left;
  while (dirent* e = ::readdir(dir))
    if (e->d_name[0] != '.') left.emplace_back(e->d_name);
  ::closedir(dir);
  EXPECT_TRUE(left.empty()) << left.front();
}

TEST(ShmClient, TenThousandAttachDetachCyclesLeakNothing) {
  TempDir d;
  auto keeper = attach(d.path(), "cyc", 2);  // a peer that sees every cycle
  ASSERT_TRUE(keeper);
  {
    auto warm = attach(d.path(), "cyc");
    ASSERT_TRUE(pump({keeper.get(), warm.get()}, [&] { return keeper->wants_interrupt(); }));
  }
  (void)pump({keeper.get()}, [&] { return false; });
  const size_t fds = open_fds(), maps = mappings(d.path());
  EXPECT_EQ(maps, 2u);  // the keeper's header and data
  for (int i = 0; i < 10000; ++i) {
    auto c = attach(d.path(), "cyc");
    ASSERT_TRUE(c) << "cycle " << i;
    c->data()[0] = static_cast<uint8_t>(i);
    if (i % 64 == 0) keeper->service();
  }
  ASSERT_TRUE(pump({keeper.get()}, [&] { return open_fds() == fds; }))
      << open_fds() << " fds, " << fds << " before";
  EXPECT_EQ(mappings(d.path()), maps);
  EXPECT_EQ(keeper->attached(), 1u);
}

}  // namespace
}  // namespace qvm::shm
