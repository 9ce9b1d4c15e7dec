#include "base/log.hpp"

#include <gtest/gtest.h>

#include <vector>

namespace qvm {
namespace {

struct Captured {
  LogDest dest;
  LogClass cls;
  std::string line;
};

class LogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Logger::set_writer([this](LogDest d, LogClass c, std::string_view l) {
      lines.push_back({d, c, std::string(l)});
    });
  }
  void TearDown() override { Logger::set_writer({}); }
  std::vector<Captured> lines;
};

TEST_F(LogTest, DefaultRoutingMatchesSpec) {
  LogRouting r = LogRouting::defaults();
  EXPECT_EQ(r[LogClass::kInfo], LogDest::kStderr);
  EXPECT_EQ(r[LogClass::kFatal], LogDest::kStderr);
  EXPECT_EQ(r[LogClass::kDebug], LogDest::kNone);
  EXPECT_EQ(r[LogClass::kVerbose], LogDest::kNone);
}

TEST_F(LogTest, ClassesAreIndependent) {
  LogRouting r = LogRouting::defaults();
  r[LogClass::kDebug] = LogDest::kStdout;
  Logger l("t", r);
  l.log(LogClass::kDebug, "d");
  l.log(LogClass::kVerbose, "v");  // still none
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0].dest, LogDest::kStdout);
  EXPECT_EQ(lines[0].line, "t: debug: d");
  EXPECT_EQ(lines[1].dest, LogDest::kNone);
}

TEST_F(LogTest, InternalAlsoGoesToSyslog) {
  Logger l("t");
  l.log(LogClass::kInternal, "x");
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[1].dest, LogDest::kSyslog);
}

TEST_F(LogTest, ParseNames) {
  EXPECT_EQ(parse_log_class("warn"), LogClass::kWarn);
  EXPECT_FALSE(parse_log_class("warning"));
  EXPECT_EQ(parse_log_dest("slog"), LogDest::kSyslog);
  EXPECT_EQ(parse_log_dest("syslog"), LogDest::kSyslog);
  EXPECT_FALSE(parse_log_dest("file"));
}

TEST(RateLimit, BurstThenRefill) {
  RateLimit rl(1.0, 3.0);
  auto t = std::chrono::steady_clock::time_point{} + std::chrono::seconds(100);
  uint64_t supp = 0;
  int allowed = 0;
  for (int i = 0; i < 10; ++i) allowed += rl.allow(t, &supp) ? 1 : 0;
  EXPECT_EQ(allowed, 3);
  EXPECT_TRUE(rl.allow(t + std::chrono::seconds(2), &supp));
  EXPECT_EQ(supp, 7u);  // the seven suppressed are reported once
}

TEST(Strprintf, Formats) {
  EXPECT_EQ(strprintf("%d-%s", 7, "x"), "7-x");
}

}  // namespace
}  // namespace qvm

namespace qvm {
namespace {

TEST_F(LogTest, ScopeMakesAVdevLoggerCurrent) {
  LogRouting quiet = LogRouting::defaults();
  quiet[LogClass::kWarn] = LogDest::kNone;
  Logger own("qvm", quiet);
  EXPECT_EQ(&Logger::current(), &Logger::global());
  EXPECT_EQ(LogScope::active(), nullptr);
  std::function<void()> later;
  {
    LogScope s(&own);
    EXPECT_EQ(&Logger::current(), &own);
    log_warn("inside");
    {
      LogScope none(nullptr);  // no change
      EXPECT_EQ(&Logger::current(), &own);
    }
    later = in_log_scope([] { log_warn("later"); });
  }
  EXPECT_EQ(&Logger::current(), &Logger::global());
  log_warn("outside");
  later();  // runs in the scope it was made in
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0].dest, LogDest::kNone);
  EXPECT_EQ(lines[1].dest, LogDest::kStderr);
  EXPECT_EQ(lines[1].line, "qvm: warn: outside");
  EXPECT_EQ(lines[2].dest, LogDest::kNone);
  EXPECT_EQ(lines[2].line, "qvm: warn: later");
}

}  // namespace
}  // namespace qvm
