// dump/destination: file names with -1 ... -9, no dump without a unique name, symlinks at a name
// never followed, checked directories, and `|command` (spec §3.13).
#include "dump/destination.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "temp_dir.hpp"

namespace qvm::dump {
namespace {

std::tm fixed_tm() {
  std::tm tm{};
  tm.tm_year = 2026 - 1900;
  tm.tm_mon = 11;  // December
  tm.tm_mday = 7;
  tm.tm_hour = 9;
  tm.tm_min = 5;
  tm.tm_sec = 3;
  return tm;
}

bool exists(const std::string& p) {
  struct stat st {};
  return ::lstat(p.c_str(), &st) == 0;
}

void touch(const std::string& p) {
  int fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  ASSERT_GE(fd, 0) << p;
  ::close(fd);
}

class Destinations : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(dir_.path().empty());
    mem_.assign(3 * 4096 + 100, 0);
    for (size_t i = 0; i < mem_.size(); ++i) mem_[i] = static_cast<uint8_t>(i * 13);
    VcpuRegs r;
    r.rip = 0x100123;
    r.rsp = 0x200000;
    in_.name = "dest";
    in_.vcpus = {r};
    in_.memory = {{0x100000, mem_, false}};
    // The reference bytes: the same core written straight to a file.
    const std::string ref = dir_.path() + "/ref";
    int fd = ::open(ref.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    ASSERT_GE(fd, 0);
    ASSERT_TRUE(write_core(fd, in_));
    ::close(fd);
    ref_ = test::read_all(ref);
    ::unlink(ref.c_str());
    ASSERT_FALSE(ref_.empty());
    out_ = dir_.path() + "/out";
    ASSERT_EQ(::mkdir(out_.c_str(), 0700), 0);
  }
  int open_dir() { return ::open(out_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); }

  test::TempDir dir_;
  std::vector<uint8_t> mem_, ref_;
  CoreInput in_;
  std::string out_;
};

TEST(DumpNames, PatternAndAttempts) {
  const std::tm tm = fixed_tm();
  EXPECT_EQ(file_name("qvm-guest", tm, 0), "qvm-guest-20261207-090503.gcore");
  EXPECT_EQ(file_name("vm1", tm, 1), "vm1-20261207-090503-1.gcore");
  EXPECT_EQ(file_name("vm1", tm, 9), "vm1-20261207-090503-9.gcore");
}

TEST(DumpDestination, Parse) {
  auto d = Destination::parse("/var/dumps");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->kind, Destination::Kind::kDirectory);
  EXPECT_EQ(d->target, "/var/dumps");
  auto c = Destination::parse("|gzip >d.gz");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->kind, Destination::Kind::kCommand);
  EXPECT_EQ(c->target, "gzip >d.gz");
  EXPECT_EQ(c->describe(), "command 'gzip >d.gz'");
  EXPECT_FALSE(Destination::parse("|"));
  EXPECT_FALSE(Destination::parse(""));
}

TEST_F(Destinations, NamesGoFromPlainToNineThenNoDump) {
  const std::tm tm = fixed_tm();
  UniqueFd d(open_dir());
  ASSERT_TRUE(d);
  for (int attempt = 0; attempt <= 9; ++attempt) {
    auto f = create_file(d.get(), "vm", tm);
    ASSERT_TRUE(f) << f.error().message;
    EXPECT_EQ(f->name, file_name("vm", tm, attempt));
    struct stat st {};
    ASSERT_EQ(::fstat(f->fd.get(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    EXPECT_TRUE(S_ISREG(st.st_mode));
  }
  auto none = create_file(d.get(), "vm", tm);
  ASSERT_FALSE(none);
  EXPECT_NE(none.error().message.find("no unique dump file name"), std::string::npos)
      << none.error().message;
  // A different second is a fresh name again.
  std::tm later = tm;
  later.tm_sec = 4;
  EXPECT_TRUE(create_file(d.get(), "vm", later));
}

TEST_F(Destinations, NoUniqueNameMeansNoDumpAndNothingWritten) {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  ASSERT_TRUE(::localtime_r(&now, &tm));
  for (int a = 0; a <= 9; ++a) touch(out_ + "/" + file_name("vm", tm, a));
  auto w = write_dump(*Destination::parse(out_), "vm", now, in_);
  ASSERT_FALSE(w);
  EXPECT_NE(w.error().message.find("no unique"), std::string::npos) << w.error().message;
  for (int a = 0; a <= 9; ++a) {
    struct stat st {};
    ASSERT_EQ(::stat((out_ + "/" + file_name("vm", tm, a)).c_str(), &st), 0);
    EXPECT_EQ(st.st_size, 0) << "an existing file was written";
  }
}

// A symlink planted at the name is taken as an existing name: the next name is used and the
// link's target is neither created nor written.
TEST_F(Destinations, SymlinksAtTheNameAreNotFollowed) {
  const std::tm tm = fixed_tm();
  const std::string victim = dir_.path() + "/victim", victim2 = dir_.path() + "/victim2";
  ASSERT_EQ(::symlink(victim.c_str(), (out_ + "/" + file_name("vm", tm, 0)).c_str()), 0);
  touch(victim2);
  ASSERT_EQ(::symlink(victim2.c_str(), (out_ + "/" + file_name("vm", tm, 1)).c_str()), 0);
  UniqueFd d(open_dir());
  auto f = create_file(d.get(), "vm", tm);
  ASSERT_TRUE(f) << f.error().message;
  EXPECT_EQ(f->name, file_name("vm", tm, 2));
  EXPECT_FALSE(exists(victim)) << "a dangling link was followed";
  struct stat st {};
  ASSERT_EQ(::stat(victim2.c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 0);
}

TEST_F(Destinations, DirectoryGetsTheCore) {
  const std::time_t now = std::time(nullptr);
  auto w = write_dump(*Destination::parse(out_), "qvm-guest", now, in_);
  ASSERT_TRUE(w) << w.error().message;
  std::tm tm{};
  ASSERT_TRUE(::localtime_r(&now, &tm));
  EXPECT_EQ(w->where, out_ + "/" + file_name("qvm-guest", tm, 0));
  EXPECT_EQ(w->bytes, ref_.size());
  EXPECT_EQ(test::read_all(w->where), ref_);
  struct stat st {};
  ASSERT_EQ(::stat(w->where.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  // A second dump in the same second gets -1 (a trailing slash makes no double one).
  auto w2 = write_dump(*Destination::parse(out_ + "/"), "qvm-guest", now, in_);
  ASSERT_TRUE(w2) << w2.error().message;
  EXPECT_EQ(w2->where, out_ + "/" + file_name("qvm-guest", tm, 1));
}

TEST_F(Destinations, MissingOrOpenDirectoriesAreRefused) {
  const std::string missing = dir_.path() + "/missing";
  auto w = write_dump(*Destination::parse(missing), "vm", std::time(nullptr), in_);
  ASSERT_FALSE(w);
  EXPECT_FALSE(exists(missing)) << "the dump directory must not be created";
  ASSERT_EQ(::chmod(out_.c_str(), 0777), 0);  // writable by others, not sticky
  auto open = write_dump(*Destination::parse(out_), "vm", std::time(nullptr), in_);
  ASSERT_FALSE(open);
  EXPECT_NE(open.error().message.find("writable by group or others"), std::string::npos)
      << open.error().message;
  // A file given as the directory.
  touch(dir_.path() + "/file");
  EXPECT_FALSE(write_dump(*Destination::parse(dir_.path() + "/file"), "vm", 0, in_));
}

TEST_F(Destinations, CommandGetsTheSameBytes) {
  const std::string file = dir_.path() + "/piped";
  auto w = write_dump(*Destination::parse("|cat > '" + file + "'"), "vm", std::time(nullptr), in_);
  ASSERT_TRUE(w) << w.error().message;
  EXPECT_EQ(w->where, "dump command 'cat > '" + file + "''");
  EXPECT_EQ(w->bytes, ref_.size());
  EXPECT_EQ(test::read_all(file), ref_);
  EXPECT_TRUE(stray_children().empty());
}

TEST_F(Destinations, CommandSeesTheNameTheDirectoryWouldHaveUsed) {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  ASSERT_TRUE(::localtime_r(&now, &tm));
  auto w =
      write_dump(*Destination::parse("|cat > \"" + out_ + "/$QVM_DUMP_NAME\""), "named", now, in_);
  ASSERT_TRUE(w) << w.error().message;
  EXPECT_EQ(test::read_all(out_ + "/" + file_name("named", tm, 0)), ref_);
}

// The command ends without reading: EPIPE (the core is larger than a pipe's buffer), reported as
// an error; this process does not ignore SIGPIPE and must survive it.
TEST_F(Destinations, ACommandThatExitsAtOnceIsAnError) {
  std::vector<uint8_t> big(4u << 20, 0xab);
  in_.memory = {{0, big, false}};
  auto w = write_dump(*Destination::parse("|exit 0"), "vm", std::time(nullptr), in_);
  ASSERT_FALSE(w);
  EXPECT_NE(w.error().message.find("dump command 'exit 0'"), std::string::npos)
      << w.error().message;
  EXPECT_EQ(w.error().sys_errno, EPIPE) << w.error().message;
}

TEST_F(Destinations, ACommandThatFailsIsAnError) {
  auto w = write_dump(*Destination::parse("|cat >/dev/null; exit 3"), "vm", 0, in_);
  ASSERT_FALSE(w);
  EXPECT_NE(w.error().message.find("exited with 3"), std::string::npos) << w.error().message;
  auto missing = write_dump(*Destination::parse("|/nonexistent/qvm-dump-cmd"), "vm", 0, in_);
  ASSERT_FALSE(missing);
}

// The command inherits neither qvm's blocked signals nor its ignored SIGPIPE.
TEST_F(Destinations, CommandRunsWithDefaultSignals) {
  sigset_t block, old;
  sigemptyset(&block);
  sigaddset(&block, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &block, &old);
  auto prev = ::signal(SIGPIPE, SIG_IGN);
  const std::string file = dir_.path() + "/sig";
  // SigBlk and SigIgn of a process the shell execs, as hex masks.
  auto w = write_dump(
      *Destination::parse("|cat >/dev/null; exec grep -E '^Sig(Blk|Ign)' /proc/self/status > '" +
                          file + "'"),
      "vm", 0, in_);
  ::signal(SIGPIPE, prev);
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  ASSERT_TRUE(w) << w.error().message;
  const auto text = test::read_all(file);
  const std::string s(text.begin(), text.end());
  EXPECT_NE(s.find("SigBlk:\t0000000000000000"), std::string::npos) << s;
  // SIGPIPE is signal 13: bit 12 of SigIgn.
  const auto at = s.find("SigIgn:\t");
  ASSERT_NE(at, std::string::npos) << s;
  const unsigned long long ign = std::stoull(s.substr(at + 8, 16), nullptr, 16);
  EXPECT_EQ(ign & (1ull << (SIGPIPE - 1)), 0u) << s;
}

// A command that neither reads nor ends: the dump gives up after the stall time, the command is
// left running and reaped later, without blocking.
TEST_F(Destinations, AStalledCommandDoesNotHoldTheCaller) {
  std::vector<uint8_t> big(1u << 20, 0xab);
  in_.memory = {{0, big, false}};
  CommandOptions o;
  o.write.stall = std::chrono::milliseconds(200);
  o.reap_wait = std::chrono::milliseconds(100);
  const auto t0 = std::chrono::steady_clock::now();
  auto w = write_dump(*Destination::parse("|sleep 30"), "vm", 0, in_, o);
  ASSERT_FALSE(w);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
  EXPECT_NE(w.error().message.find("no progress"), std::string::npos) << w.error().message;
  const auto strays = stray_children();
  ASSERT_EQ(strays.size(), 1u);
  EXPECT_EQ(reap_children(), 1u) << "still running: not reaped yet";
  ::kill(strays[0], SIGKILL);
  for (int i = 0; i < 200 && reap_children() != 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_TRUE(stray_children().empty());
}

}  // namespace
}  // namespace qvm::dump
