// `hostdev "|command"` (src/vdev/api/char_endpoints.*): the command runs with the device's stream
// as its stdin/stdout, no shell; its end of the stream closes first, then it is reaped.
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "vdev/api/char_endpoints.hpp"

namespace qvm::vdev {
namespace {

std::string read_all(int fd, size_t want) {
  std::string s;
  char b[256];
  while (s.size() < want) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 5000) <= 0) break;
    ssize_t n = ::read(fd, b, sizeof b);
    if (n <= 0) break;
    s.append(b, static_cast<size_t>(n));
  }
  return s;
}

bool alive(pid_t pid) {
  return ::kill(pid, 0) == 0;
}

TEST(CharCommand, SplitsWordsWithQuotesAndNoShell) {
  auto w = split_command("sh -c 'gzip >x.gz'  \"a b\"c");
  ASSERT_TRUE(w);
  ASSERT_EQ(w->size(), 4u);
  EXPECT_EQ((*w)[0], "sh");
  EXPECT_EQ((*w)[2], "gzip >x.gz");
  EXPECT_EQ((*w)[3], "a bc");
  EXPECT_FALSE(split_command(""));
  EXPECT_FALSE(split_command("   "));
  EXPECT_FALSE(split_command("cat 'x"));
}

TEST(CharCommand, BothWaysThroughOneCommand) {
  pid_t pid = -1;
  {
    auto ep = open_char_endpoints({"|tr a-z A-Z"});
    ASSERT_TRUE(ep) << ep.error().message;
    ASSERT_EQ(ep->children.size(), 1u);
    pid = ep->children[0]->pid();
    ASSERT_GE(ep->in, 0);
    ASSERT_EQ(ep->in, ep->out);
    ASSERT_EQ(::write(ep->out, "hello\n", 6), 6);
    ::shutdown(ep->out, SHUT_WR);  // tr flushes at EOF
    EXPECT_EQ(read_all(ep->in, 6), "HELLO\n");
  }
  EXPECT_FALSE(alive(pid));  // reaped when the device went away
}

TEST(CharCommand, OutputOnlyAndInputOnly) {
  char dir[] = "/tmp/qvm-charcmd-XXXXXX";
  ASSERT_NE(::mkdtemp(dir), nullptr);
  const std::string file = std::string(dir) + "/out.txt";
  {
    auto ep = open_char_endpoints({">|tee " + file});
    ASSERT_TRUE(ep) << ep.error().message;
    EXPECT_EQ(ep->in, -1);
    ASSERT_EQ(::write(ep->out, "guest output\n", 13), 13);
  }  // EOF to tee, which has written the file by the time it is reaped
  std::ifstream f(file);
  std::string line;
  std::getline(f, line);
  EXPECT_EQ(line, "guest output");
  ::unlink(file.c_str());
  ::rmdir(dir);
  auto in = open_char_endpoints({"<|echo from the host"});
  ASSERT_TRUE(in) << in.error().message;
  EXPECT_EQ(in->out, -1);
  EXPECT_EQ(read_all(in->in, 14), "from the host\n");
}

TEST(CharCommand, NotAFileNamedAfterTheCommandAndNothingInDryrun) {
  auto ep = open_char_endpoints({">|definitely-not-a-command-qvm"});
  EXPECT_FALSE(ep);
  EXPECT_NE(::access("|definitely-not-a-command-qvm", F_OK), 0);
  auto dry = open_char_endpoints({">|cat"}, true);
  ASSERT_TRUE(dry);
  EXPECT_TRUE(dry->children.empty());
  EXPECT_NE(dry->description.find("started when the VM runs"), std::string::npos);
}

TEST(CharCommand, ACommandThatIgnoresEofIsKilled) {
  pid_t pid = -1;
  {
    auto ep = open_char_endpoints({">|sleep 30"});
    ASSERT_TRUE(ep) << ep.error().message;
    pid = ep->children[0]->pid();
  }  // 2 s grace, then SIGKILL
  EXPECT_FALSE(alive(pid));
}

}  // namespace
}  // namespace qvm::vdev
