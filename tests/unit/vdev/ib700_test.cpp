// The IB700 watchdog model (vdev/wdt_ib700/ib700.hpp): ports, timeout table, stop, expiry.
#include "vdev/wdt_ib700/ib700.hpp"

#include <gtest/gtest.h>

#include <vector>

namespace qvm::vdev {
namespace {

struct Recorder {
  std::vector<std::optional<std::chrono::seconds>> arms;
  Ib700 wdt{[this](std::optional<std::chrono::seconds> t) { arms.push_back(t); }};
};

TEST(Ib700, StartArmsWithTheTableAndStopDisarms) {
  Recorder r;
  EXPECT_FALSE(r.wdt.armed());
  r.wdt.write(Ib700::kStartOffset, 0);  // index 0: 30 s
  ASSERT_EQ(r.arms.size(), 1u);
  EXPECT_EQ(r.arms[0], std::chrono::seconds(30));
  EXPECT_TRUE(r.wdt.armed());
  r.wdt.write(Ib700::kStartOffset, 14);  // a kick with index 14: 2 s
  EXPECT_EQ(r.arms.back(), std::chrono::seconds(2));
  r.wdt.write(Ib700::kStartOffset, 0x1f);  // only the low 4 bits count: 15 -> 0 s
  EXPECT_EQ(r.arms.back(), std::chrono::seconds(0));
  EXPECT_EQ(r.wdt.kicks(), 3u);
  r.wdt.write(Ib700::kStopOffset, 0x5a);  // any value stops it
  EXPECT_EQ(r.arms.back(), std::nullopt);
  EXPECT_FALSE(r.wdt.armed());
}

TEST(Ib700, ExpiryIsDueOnlyWhileArmed) {
  Recorder r;
  EXPECT_FALSE(r.wdt.expire());  // never armed: a stale timer does nothing
  r.wdt.write(Ib700::kStartOffset, 13);
  EXPECT_EQ(r.wdt.timeout(), std::chrono::seconds(4));
  EXPECT_TRUE(r.wdt.expire());
  EXPECT_FALSE(r.wdt.expire());  // once
  r.wdt.write(Ib700::kStartOffset, 13);
  r.wdt.write(Ib700::kStopOffset, 0);
  EXPECT_FALSE(r.wdt.expire());
}

TEST(Ib700, TheMiddlePortAndReadsDoNothing) {
  Recorder r;
  r.wdt.write(1, 0);  // 0x442 is not decoded
  EXPECT_TRUE(r.arms.empty());
  for (uint64_t o = 0; o < Ib700::kPorts; ++o) EXPECT_EQ(r.wdt.read(o), 0xff);
}

}  // namespace
}  // namespace qvm::vdev
