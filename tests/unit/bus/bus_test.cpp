#include "bus/bus.hpp"

#include <gtest/gtest.h>

#include "base/log.hpp"

namespace qvm::bus {
namespace {

struct Echo : BusDevice {
  uint64_t last_offset = 0;
  std::vector<uint8_t> written;
  void read(uint64_t offset, std::span<uint8_t> d) override {
    last_offset = offset;
    for (auto& b : d) b = 0x5a;
  }
  void write(uint64_t offset, std::span<const uint8_t> d) override {
    last_offset = offset;
    written.assign(d.begin(), d.end());
  }
};

TEST(Bus, RoutesByRangeWithOffsets) {
  Bus b("t");
  auto a = std::make_shared<Echo>(), c = std::make_shared<Echo>();
  ASSERT_TRUE(b.insert(0x3f8, 8, a, "uart").ok());
  ASSERT_TRUE(b.insert(0x70, 2, c, "rtc").ok());
  uint8_t v[1];
  ASSERT_TRUE(b.read(0x3fd, v));
  EXPECT_EQ(a->last_offset, 5u);
  EXPECT_EQ(v[0], 0x5a);
  uint8_t w[2] = {1, 2};
  ASSERT_TRUE(b.write(0x70, w));
  EXPECT_EQ(c->written, (std::vector<uint8_t>{1, 2}));
}

TEST(Bus, UnclaimedAndStraddlingAccessesMiss) {
  Bus b("t");
  ASSERT_TRUE(b.insert(0x100, 4, std::make_shared<Echo>(), "d").ok());
  uint8_t v[4];
  EXPECT_FALSE(b.read(0xff, std::span<uint8_t>(v, 1)));
  EXPECT_FALSE(b.read(0x104, std::span<uint8_t>(v, 1)));
  EXPECT_FALSE(b.read(0x102, std::span<uint8_t>(v, 4)));  // runs past the device
  EXPECT_FALSE(b.read(UINT64_MAX, std::span<uint8_t>(v, 4)));
  EXPECT_TRUE(b.read(0x100, std::span<uint8_t>(v, 4)));
}

TEST(Bus, OverlapsAreRejectedWithNames) {
  Bus b("pio");
  ASSERT_TRUE(b.insert(0x60, 5, std::make_shared<Echo>(), "kbd").ok());
  auto s = b.insert(0x64, 1, std::make_shared<Echo>(), "other");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("overlaps kbd"), std::string::npos);
  EXPECT_FALSE(b.insert(0x10, 0, std::make_shared<Echo>(), "empty").ok());
}

TEST(Bus, MoveARange) {
  Bus b("mmio");
  auto d = std::make_shared<Echo>();
  ASSERT_TRUE(b.insert(0xc0000000, 0x1000, d, "bar").ok());
  ASSERT_TRUE(b.insert(0xd0000000, 0x1000, std::make_shared<Echo>(), "other").ok());
  uint8_t v[4];
  ASSERT_TRUE(b.move(0xc0000000, 0xfebf8000).ok());
  EXPECT_FALSE(b.read(0xc0000000, v));
  EXPECT_TRUE(b.read(0xfebf8004, v));
  EXPECT_EQ(d->last_offset, 4u);
  EXPECT_FALSE(b.move(0xfebf8000, 0xd0000800).ok());  // would overlap "other"
  EXPECT_TRUE(b.read(0xfebf8000, v));                 // unchanged after a refused move
  EXPECT_FALSE(b.move(0x1234, 0x5000).ok());          // nothing there
  EXPECT_TRUE(b.move(0xfebf8000, 0xfebf8000).ok());   // onto itself
}

TEST(Bus, RemoveARange) {
  Bus b("t");
  auto a = std::make_shared<Echo>();
  ASSERT_TRUE(b.insert(0x1000, 0x100, a, "win").ok());
  uint8_t v[1];
  ASSERT_TRUE(b.read(0x1010, v));
  ASSERT_TRUE(b.remove(0x1000).ok());
  EXPECT_FALSE(b.read(0x1010, v));
  EXPECT_FALSE(b.remove(0x1000).ok());                  // nothing there any more
  ASSERT_TRUE(b.insert(0x1000, 0x100, a, "win").ok());  // the range is free again
}

TEST(Bus, LittleEndianHelpers) {
  uint8_t d[4];
  store_le(d, 0x11223344);
  EXPECT_EQ(d[0], 0x44);
  EXPECT_EQ(load_le(d), 0x11223344u);
}

// A device registered inside a vdev's log scope (`vdev ... log`) runs its accesses in it.
struct ScopeProbe : BusDevice {
  Logger* seen = nullptr;
  void read(uint64_t, std::span<uint8_t> d) override {
    seen = LogScope::active();
    for (auto& b : d) b = 0;
  }
  void write(uint64_t, std::span<const uint8_t>) override { seen = LogScope::active(); }
};

TEST(Bus, DevicesKeepTheLogScopeTheyWereAddedIn) {
  auto plain = std::make_shared<ScopeProbe>(), scoped = std::make_shared<ScopeProbe>();
  EXPECT_EQ(in_log_scope(plain), plain);  // no scope: the device itself, no wrapper
  Logger own("qvm");
  std::shared_ptr<BusDevice> wrapped;
  {
    LogScope s(&own);
    wrapped = in_log_scope(scoped);
  }
  EXPECT_NE(wrapped, scoped);
  Bus b("t");
  ASSERT_TRUE(b.insert(0x10, 1, wrapped, "scoped").ok());
  ASSERT_TRUE(b.insert(0x20, 1, plain, "plain").ok());
  uint8_t v[1] = {0};
  ASSERT_TRUE(b.read(0x10, v));
  EXPECT_EQ(scoped->seen, &own);
  ASSERT_TRUE(b.write(0x20, v));
  EXPECT_EQ(plain->seen, nullptr);
  EXPECT_EQ(LogScope::active(), nullptr);  // restored after the access
}

}  // namespace
}  // namespace qvm::bus
