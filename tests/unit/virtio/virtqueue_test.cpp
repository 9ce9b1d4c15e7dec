// Split virtqueue rules (virtio 1.2 §2.7) and every malformed shape a guest can build.
#include "virtio/queue/virtqueue.hpp"

#include <gtest/gtest.h>

#include "virtio/queue/testing/mock_driver.hpp"
#include "virtio/virtio_defs.hpp"

namespace qvm::virtio {
namespace {

using testing::MockDriver;
using Seg = MockDriver::Seg;

struct QueueTest : ::testing::Test {
  static constexpr uint16_t kSize = 16;
  memory::GuestMemory mem;
  Queue q{256};
  std::unique_ptr<MockDriver> drv;
  void SetUp() override {
    ASSERT_TRUE(mem.add_region(0, 0x100000, false).ok());
    drv = std::make_unique<MockDriver>(mem, kSize);
    drv->configure(q);
    ASSERT_TRUE(q.validate(mem).ok());
  }
  // Pops and expects a malformed-chain error (not ring-level breakage).
  void expect_malformed(const char* what) {
    auto r = q.pop(mem);
    ASSERT_FALSE(r.ok()) << what;
    EXPECT_FALSE(q.needs_reset()) << what << ": " << r.error().message;
  }
};

TEST_F(QueueTest, EmptyRingAndNotReadyYieldNothing) {
  auto r = q.pop(mem);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->has_value());
  Queue idle(16);
  auto r2 = idle.pop(mem);
  ASSERT_TRUE(r2.ok());
  EXPECT_FALSE(r2->has_value());
}

TEST_F(QueueTest, PopsReadableThenWritableInOrder) {
  const Seg segs[] = {{4, false, {1, 2, 3, 4}}, {8, false}, {16, true}, {2, true}};
  uint16_t head = drv->add_and_publish(segs);
  auto r = q.pop(mem);
  ASSERT_TRUE(r.ok() && r->has_value());
  const DescriptorChain& c = **r;
  EXPECT_EQ(c.head, head);
  ASSERT_EQ(c.readable.size(), 2u);
  ASSERT_EQ(c.writable.size(), 2u);
  EXPECT_EQ(c.readable[0].len, 4u);
  EXPECT_EQ(c.readable[0].addr, drv->seg_addr(0));
  EXPECT_EQ(c.writable[1].addr, drv->seg_addr(3));
  EXPECT_EQ(c.readable_bytes, 12u);
  EXPECT_EQ(c.writable_bytes, 18u);
  ASSERT_TRUE(q.add_used(mem, c.head, 18).ok());
  EXPECT_EQ(drv->used_idx(), 1);
  EXPECT_EQ(drv->used(0).id, head);
  EXPECT_EQ(drv->used(0).len, 18u);
  auto again = q.pop(mem);
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(again->has_value());
}

TEST_F(QueueTest, ZeroLengthDescriptorsAreDropped) {
  const Seg segs[] = {{0, false}, {4, false}, {0, true}};
  drv->add_and_publish(segs);
  auto r = q.pop(mem);
  ASSERT_TRUE(r.ok() && r->has_value());
  EXPECT_EQ((*r)->readable.size(), 1u);
  EXPECT_TRUE((*r)->writable.empty());
}

TEST_F(QueueTest, IndexesWrapAt65536) {
  uint64_t buf = drv->alloc(4);
  for (int i = 0; i < 70000; ++i) {
    auto head = static_cast<uint16_t>(i % kSize);
    drv->set_desc(head, VirtqDesc{buf, 4, kDescFlagWrite, 0});
    drv->publish(head);
    auto r = q.pop(mem);
    ASSERT_TRUE(r.ok() && r->has_value()) << i;
    ASSERT_EQ((*r)->head, head);
    ASSERT_TRUE(q.add_used(mem, head, 4).ok());
  }
  EXPECT_EQ(drv->used_idx(), static_cast<uint16_t>(70000));
}

TEST_F(QueueTest, IndirectChain) {
  const Seg segs[] = {{4, false, {9}}, {32, true}, {32, true}};
  drv->add_and_publish(segs, /*indirect=*/true);
  auto r = q.pop(mem);
  ASSERT_TRUE(r.ok() && r->has_value()) << r.error().message;
  EXPECT_EQ((*r)->readable.size(), 1u);
  EXPECT_EQ((*r)->writable.size(), 2u);
  EXPECT_EQ((*r)->writable_bytes, 64u);
}

TEST_F(QueueTest, DirectDescriptorsThenIndirectTable) {
  uint64_t table = drv->alloc(32);
  uint64_t buf = drv->alloc(64);
  drv->write_desc(table, 0, VirtqDesc{buf, 8, kDescFlagNext | kDescFlagWrite, 1});
  drv->write_desc(table, 1, VirtqDesc{buf + 8, 8, kDescFlagWrite, 0});
  drv->set_desc(3, VirtqDesc{buf + 32, 4, kDescFlagNext, 4});
  drv->set_desc(4, VirtqDesc{table, 32, kDescFlagIndirect, 0});
  drv->publish(3);
  auto r = q.pop(mem);
  ASSERT_TRUE(r.ok() && r->has_value()) << r.error().message;
  EXPECT_EQ((*r)->readable.size(), 1u);
  EXPECT_EQ((*r)->writable.size(), 2u);
}

TEST_F(QueueTest, IndirectWithoutFeatureFails) {
  q.set_indirect(false);
  const Seg segs[] = {{4, true}};
  drv->add_and_publish(segs, true);
  expect_malformed("indirect without feature");
}

TEST_F(QueueTest, NestedIndirectFails) {
  uint64_t inner = drv->alloc(16);
  uint64_t outer = drv->alloc(16);
  drv->write_desc(inner, 0, VirtqDesc{drv->alloc(4), 4, kDescFlagWrite, 0});
  drv->write_desc(outer, 0, VirtqDesc{inner, 16, kDescFlagIndirect, 0});
  drv->set_desc(0, VirtqDesc{outer, 16, kDescFlagIndirect, 0});
  drv->publish(0);
  expect_malformed("nested indirect");
}

TEST_F(QueueTest, IndirectWithNextFails) {
  uint64_t table = drv->alloc(16);
  drv->write_desc(table, 0, VirtqDesc{drv->alloc(4), 4, kDescFlagWrite, 0});
  drv->set_desc(0, VirtqDesc{table, 16, kDescFlagIndirect | kDescFlagNext, 1});
  drv->set_desc(1, VirtqDesc{drv->alloc(4), 4, kDescFlagWrite, 0});
  drv->publish(0);
  expect_malformed("indirect with next");
}

TEST_F(QueueTest, IndirectBadLengthsFail) {
  uint64_t table = drv->alloc(64);
  for (uint32_t len : {0u, 17u, 8u}) {
    drv->set_desc(0, VirtqDesc{table, len, kDescFlagIndirect, 0});
    drv->publish(0);
    expect_malformed("indirect length");
  }
  drv->set_desc(0, VirtqDesc{0xfffff000, 32, kDescFlagIndirect, 0});  // not guest memory
  drv->publish(0);
  expect_malformed("indirect table outside memory");
  drv->set_desc(0, VirtqDesc{UINT64_MAX - 15, 32, kDescFlagIndirect, 0});  // wraps
  drv->publish(0);
  expect_malformed("indirect table wraps");
}

TEST_F(QueueTest, LoopInsideIndirectTableIsBounded) {
  uint64_t table = drv->alloc(32);
  uint64_t buf = drv->alloc(4);
  drv->write_desc(table, 0, VirtqDesc{buf, 4, kDescFlagNext, 1});
  drv->write_desc(table, 1, VirtqDesc{buf, 4, kDescFlagNext, 0});
  drv->set_desc(0, VirtqDesc{table, 32, kDescFlagIndirect, 0});
  drv->publish(0);
  expect_malformed("indirect loop");
}

TEST_F(QueueTest, LoopsInNextChainsAreBounded) {
  uint64_t buf = drv->alloc(4);
  drv->set_desc(0, VirtqDesc{buf, 4, kDescFlagNext, 0});  // self loop
  drv->publish(0);
  expect_malformed("self loop");
  drv->set_desc(1, VirtqDesc{buf, 4, kDescFlagNext, 2});
  drv->set_desc(2, VirtqDesc{buf, 4, kDescFlagNext, 1});
  drv->publish(1);
  expect_malformed("two-cycle");
  // The longest legal chain (size descriptors) is fine.
  for (uint16_t i = 0; i < kSize; ++i)
    drv->set_desc(i, VirtqDesc{buf, 4, static_cast<uint16_t>(i + 1 < kSize ? kDescFlagNext : 0),
                               static_cast<uint16_t>(i + 1)});
  drv->publish(0);
  auto r = q.pop(mem);
  ASSERT_TRUE(r.ok() && r->has_value());
  EXPECT_EQ((*r)->readable.size(), kSize);
}

TEST_F(QueueTest, NextIndexOutOfRangeFails) {
  drv->set_desc(0, VirtqDesc{drv->alloc(4), 4, kDescFlagNext, kSize});
  drv->publish(0);
  expect_malformed("next out of range");
}

TEST_F(QueueTest, BuffersOutsideGuestMemoryFail) {
  drv->set_desc(0, VirtqDesc{0x100000 - 2, 4, 0, 0});  // runs off the end
  drv->publish(0);
  expect_malformed("buffer off the end");
  drv->set_desc(0, VirtqDesc{UINT64_MAX - 1, 4, kDescFlagWrite, 0});  // wraps
  drv->publish(0);
  expect_malformed("buffer wraps");
}

TEST_F(QueueTest, WritableBufferInReadOnlyMemoryFails) {
  ASSERT_TRUE(mem.add_region(0x200000, 0x1000, true).ok());
  drv->set_desc(0, VirtqDesc{0x200000, 4, 0, 0});  // reading ROM is fine
  drv->publish(0);
  auto ok = q.pop(mem);
  ASSERT_TRUE(ok.ok() && ok->has_value());
  drv->set_desc(0, VirtqDesc{0x200000, 4, kDescFlagWrite, 0});
  drv->publish(0);
  expect_malformed("write to ROM");
}

TEST_F(QueueTest, ReadableAfterWritableFails) {
  const Seg segs[] = {{4, true}, {4, false}};
  drv->add_and_publish(segs);
  expect_malformed("readable after writable");
  const Seg segs2[] = {{4, true}, {4, false}};
  drv->add_and_publish(segs2, true);
  expect_malformed("readable after writable (indirect)");
}

TEST_F(QueueTest, TotalLengthOver4GiBFails) {
  // 4 GiB of lazily reserved memory above the rings.
  ASSERT_TRUE(mem.add_region(0x100000000ull, 0x100000000ull, false).ok());
  drv->set_desc(0, VirtqDesc{0x100000000ull, 0xffff0000u, kDescFlagNext | kDescFlagWrite, 1});
  drv->set_desc(1, VirtqDesc{0x100000000ull, 0x20000u, kDescFlagWrite, 0});
  drv->publish(0);
  expect_malformed("len overflow");
}

TEST_F(QueueTest, HeadOutOfRangeBreaksTheQueue) {
  drv->publish(kSize);  // head index == size
  auto r = q.pop(mem);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(q.needs_reset());
  auto after = q.pop(mem);  // stopped until reset
  ASSERT_TRUE(after.ok());
  EXPECT_FALSE(after->has_value());
  q.set_ready(true);
  EXPECT_FALSE(q.needs_reset());
}

TEST_F(QueueTest, AvailIndexJumpBeyondSizeBreaksTheQueue) {
  drv->set_avail_idx(kSize + 1);
  auto r = q.pop(mem);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(q.needs_reset());
  EXPECT_FALSE(q.add_used(mem, 0, 0).ok());
}

TEST_F(QueueTest, AvailIndexExactlySizeAheadIsFine) {
  const Seg segs[] = {{4, true}};
  for (int i = 0; i < kSize; ++i) drv->add_and_publish(segs);
  for (int i = 0; i < kSize; ++i) {
    auto r = q.pop(mem);
    ASSERT_TRUE(r.ok() && r->has_value()) << i;
  }
}

TEST_F(QueueTest, NextCompletesMalformedChainsWithZeroLength) {
  drv->set_desc(0, VirtqDesc{drv->alloc(4), 4, kDescFlagNext, 0});  // loop
  drv->publish(0);
  const Seg segs[] = {{8, true}};
  uint16_t good = drv->add_chain(segs, false, 5);
  drv->publish(good);
  auto c = q.next(mem);
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->head, good);
  EXPECT_EQ(drv->used_idx(), 1);
  EXPECT_EQ(drv->used(0).id, 0u);
  EXPECT_EQ(drv->used(0).len, 0u);
}

TEST_F(QueueTest, UndoPopReturnsTheSameChain) {
  const Seg segs[] = {{8, true}};
  uint16_t h = drv->add_and_publish(segs);
  ASSERT_TRUE(q.next(mem).has_value());
  q.undo_pop();
  auto c = q.next(mem);
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->head, h);
}

TEST_F(QueueTest, ValidateChecksSizeAlignmentAndContainment) {
  Queue v(256);
  v.set_size(12);
  EXPECT_FALSE(v.validate(mem).ok());  // not a power of two
  v.set_size(512);
  EXPECT_FALSE(v.validate(mem).ok());  // above max
  v.set_size(0);
  EXPECT_FALSE(v.validate(mem).ok());
  v.set_size(16);
  v.set_desc_addr(8);
  EXPECT_FALSE(v.validate(mem).ok());  // descriptor table 16-aligned
  v.set_desc_addr(0);
  v.set_avail_addr(0x1001);
  EXPECT_FALSE(v.validate(mem).ok());
  v.set_avail_addr(0x1000);
  v.set_used_addr(0x2002);
  EXPECT_FALSE(v.validate(mem).ok());
  v.set_used_addr(0x100000 - 8);  // used ring runs out of memory
  EXPECT_FALSE(v.validate(mem).ok());
  v.set_used_addr(0x2000);
  EXPECT_TRUE(v.validate(mem).ok());
  EXPECT_EQ(Queue(0).max_size(), Queue::kMaxSize);
  EXPECT_EQ(Queue(60000).max_size(), Queue::kMaxSize);
}

TEST_F(QueueTest, NoInterruptFlagSuppressesNotification) {
  EXPECT_FALSE(q.needs_notification(mem));  // nothing used yet
  const Seg segs[] = {{4, true}};
  drv->add_and_publish(segs);
  auto c = q.next(mem);
  ASSERT_TRUE(q.add_used(mem, c->head, 4).ok());
  drv->set_avail_flags(kAvailFlagNoInterrupt);
  EXPECT_FALSE(q.needs_notification(mem));
  drv->add_and_publish(segs);
  c = q.next(mem);
  ASSERT_TRUE(q.add_used(mem, c->head, 4).ok());
  drv->set_avail_flags(0);
  EXPECT_TRUE(q.needs_notification(mem));
  EXPECT_FALSE(q.needs_notification(mem));  // nothing new since
}

TEST_F(QueueTest, EventIdxUsedEvent) {
  q.set_event_idx(true);
  const Seg segs[] = {{4, true}};
  drv->set_avail_flags(kAvailFlagNoInterrupt);  // ignored with EVENT_IDX (§2.7.10)
  drv->set_used_event(1);                       // interrupt when used idx passes 1 (i.e. becomes 2)
  for (int i = 0; i < 2; ++i) drv->add_and_publish(segs);
  auto c = q.next(mem);
  ASSERT_TRUE(q.add_used(mem, c->head, 4).ok());
  EXPECT_FALSE(q.needs_notification(mem));  // used idx 1: event not passed
  c = q.next(mem);
  ASSERT_TRUE(q.add_used(mem, c->head, 4).ok());
  EXPECT_TRUE(q.needs_notification(mem));  // used idx 2 passed used_event 1
  // A batch that jumps over used_event still notifies once.
  drv->set_used_event(2);
  for (int i = 0; i < 3; ++i) drv->add_and_publish(segs);
  for (int i = 0; i < 3; ++i) {
    c = q.next(mem);
    ASSERT_TRUE(q.add_used(mem, c->head, 4).ok());
  }
  EXPECT_TRUE(q.needs_notification(mem));
}

TEST_F(QueueTest, EventIdxPublishesAvailEventWhenRingEmpties) {
  q.set_event_idx(true);
  const Seg segs[] = {{4, true}};
  for (int i = 0; i < 3; ++i) drv->add_and_publish(segs);
  int n = 0;
  while (q.next(mem)) ++n;
  EXPECT_EQ(n, 3);
  EXPECT_EQ(drv->avail_event(), 3);  // notify me when avail idx moves past 3
}

TEST_F(QueueTest, NoNotifyIsSetWhileBusyAndClearedWhenTheRingEmpties) {
  const Seg segs[] = {{4, true}};
  drv->add_and_publish(segs);
  ASSERT_TRUE(q.next(mem));
  EXPECT_EQ(drv->used_flags(), 0);  // suppression is opt-in
  q.set_notify_suppression(true);
  for (int i = 0; i < 2; ++i) drv->add_and_publish(segs);
  ASSERT_TRUE(q.next(mem));
  EXPECT_EQ(drv->used_flags(), kUsedFlagNoNotify);  // busy: §2.7.7, the driver need not notify
  EXPECT_TRUE(q.notifications_suppressed());
  drv->add_and_publish(segs);  // added while suppressed: found without a notification
  int n = 0;
  while (q.next(mem)) ++n;
  EXPECT_EQ(n, 2);
  EXPECT_EQ(drv->used_flags(), 0);  // ring found empty: notify me again
  EXPECT_FALSE(q.notifications_suppressed());
  EXPECT_FALSE(q.next(mem));  // nothing new: stays cleared, no write
  EXPECT_EQ(drv->used_flags(), 0);
}

TEST_F(QueueTest, NoNotifyIsNotUsedWithEventIdxAndResetsWithTheQueue) {
  q.set_notify_suppression(true);
  q.set_event_idx(true);  // avail_event does the job (§2.7.10)
  const Seg segs[] = {{4, true}};
  for (int i = 0; i < 2; ++i) drv->add_and_publish(segs);
  ASSERT_TRUE(q.next(mem));
  EXPECT_EQ(drv->used_flags(), 0);
  q.set_event_idx(false);
  ASSERT_TRUE(q.next(mem));
  EXPECT_TRUE(q.notifications_suppressed());
  q.set_ready(true);  // re-enabled rings start with notifications on
  EXPECT_FALSE(q.notifications_suppressed());
}

TEST_F(QueueTest, RingsThatLeaveMemoryBreakTheQueue) {
  Queue bad(16);
  bad.set_desc_addr(0);
  bad.set_avail_addr(0x200000);  // unmapped (validate() would refuse; pop must cope anyway)
  bad.set_used_addr(0x300000);
  bad.set_ready(true);
  EXPECT_FALSE(bad.pop(mem).ok());
  EXPECT_TRUE(bad.needs_reset());
  EXPECT_FALSE(bad.next(mem).has_value());
}

TEST_F(QueueTest, DescribeShowsTheDriversAndTheDevicesIndices) {
  EXPECT_EQ(Queue(16).describe(mem), "size 16, not ready");
  q.set_notify_suppression(true);
  const Seg segs[] = {{4, true}};
  for (int i = 0; i < 3; ++i) drv->add_and_publish(segs);
  auto c = q.next(mem);
  ASSERT_TRUE(c);
  ASSERT_TRUE(q.add_used(mem, c->head, 4).ok());
  EXPECT_EQ(q.describe(mem), "size 16 avail 3 next_avail 1 (2 pending) used 1 NO_NOTIFY");
  q.set_event_idx(true);  // the driver's used_event and our avail_event, as the rings hold them
  const std::string e = q.describe(mem);
  EXPECT_NE(e.find("used 1 used_event 0 avail_event "), std::string::npos) << e;
  EXPECT_EQ(e.find("NO_NOTIFY"), std::string::npos) << e;
}

TEST_F(QueueTest, DescribeShowsUnreadableRingFieldsAndBreakage) {
  Queue bad(16);
  bad.set_avail_addr(0x200000);  // unmapped
  bad.set_used_addr(0x300000);
  bad.set_ready(true);
  EXPECT_EQ(bad.describe(mem), "size 16 avail ? next_avail 0 (0 pending) used 0");
  EXPECT_FALSE(bad.pop(mem).ok());
  EXPECT_EQ(bad.describe(mem), "size 16 avail ? next_avail 0 (0 pending) used 0 BROKEN");
}

}  // namespace
}  // namespace qvm::virtio
