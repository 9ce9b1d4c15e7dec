// virtio-blk io_uring engine (`aio io_uring`, virtio 1.2 §5.2.6): completions through the ring's
// eventfd, option checks, short transfers at end of file, requests that take the synchronous
// path (more than IOV_MAX buffers), multiple queues, destruction with requests in flight.
// The request semantics shared by every engine are covered by blk_test.cpp (Engines/io_uring).
#include <gtest/gtest.h>
#include <limits.h>
#include <poll.h>
#include <unistd.h>

#include "blk_test_util.hpp"
#include "virtio/virtio_defs.hpp"

namespace qvm::vdev::testing {
namespace {

VirtioBlk::Options uring_opts(const std::string& path) {
  VirtioBlk::Options o;
  o.path = path;
  o.aio = VirtioBlk::Aio::kUring;
  o.lock = VirtioBlk::Lock::kOff;  // these tests open one image with several engines at once
  return o;
}

// Reaps like the machine's event loop: wait for the eventfd, call on_completion().
bool pump_until(BlkHarness& h, uint16_t used, uint16_t q = 0) {
  for (int i = 0; i < 1000 && h.drv[q]->used_idx() != used; ++i) {
    pollfd p{h.dev->completion_fd(), POLLIN, 0};
    if (::poll(&p, 1, 100) > 0) h.dev->on_completion();
  }
  return h.drv[q]->used_idx() == used;
}

TEST(BlkUring, OptionsAndDescribe) {
  TempDisk disk(64 * 1024);
  auto o = uring_opts(disk.path());
  auto dev = VirtioBlk::open(o);
  ASSERT_TRUE(dev.ok()) << dev.error().message;
  EXPECT_EQ((*dev)->aio(), VirtioBlk::Aio::kUring);
  EXPECT_GE((*dev)->completion_fd(), 0);
  EXPECT_NE((*dev)->describe().find("aio io_uring"), std::string::npos);
  o.threads = 4;  // workers belong to `aio threads`
  auto bad = VirtioBlk::open(o);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("aio threads"), std::string::npos);
  // threads > 1 without aio picks the worker engine, threads 1 inline (buffered) or io_uring.
  o.aio = VirtioBlk::Aio::kDefault;
  EXPECT_EQ((*VirtioBlk::open(o))->aio(), VirtioBlk::Aio::kThreads);
  o.threads = 1;
  EXPECT_EQ((*VirtioBlk::open(o))->aio(), VirtioBlk::Aio::kInline);    // buffered
  EXPECT_EQ(VirtioBlk::default_aio(1, true), VirtioBlk::Aio::kUring);  // O_DIRECT
  o.aio = VirtioBlk::Aio::kInline;
  EXPECT_EQ((*VirtioBlk::open(o))->completion_fd(), -1);
}

TEST(BlkUring, CompletionsArriveThroughTheEventfd) {
  TempDisk disk(4 << 20);
  BlkHarness h;
  ASSERT_TRUE(h.start(uring_opts(disk.path())).ok());
  // Large writes go to io_uring's workers (not done at submission): reaped through the eventfd.
  std::vector<BlkHarness::Req> reqs;
  for (uint32_t i = 0; i < 4; ++i) {
    const Seg w[] = {{16, false, header(blk::kTypeOut, i * 2048)},
                     {1 << 20, false, filled(1 << 20, static_cast<uint8_t>(i + 7))},
                     {1, true}};
    reqs.push_back(h.submit(w));
  }
  const Seg f[] = {{16, false, header(blk::kTypeFlush, 0)}, {1, true}};
  reqs.push_back(h.submit(f));
  h.dev->process_queue(0);
  ASSERT_TRUE(pump_until(h, 5));
  for (const auto& r : reqs) EXPECT_EQ(h.status(r), blk::kStatusOk);
  for (uint32_t i = 0; i < 4; ++i)
    EXPECT_EQ(disk.read(uint64_t{i} << 20, 1 << 20), filled(1 << 20, static_cast<uint8_t>(i + 7)));
  EXPECT_GE(h.irq.used.load(), 1);
  // A read of what was written, with the used length = data + status (§5.2.6).
  const Seg rd[] = {{16, false, header(blk::kTypeIn, 2048)}, {8192, true}, {1, true}};
  auto r = h.submit(rd);
  h.dev->process_queue(0);
  ASSERT_TRUE(pump_until(h, 6));
  EXPECT_EQ(h.status(r), blk::kStatusOk);
  EXPECT_EQ(h.drv[0]->used(5).len, 8193u);
  EXPECT_EQ(h.bytes(r.addrs[1], 8192), disk.read(1 << 20, 8192));
}

// The event loop's busy poll (`poll USEC`): poll() starts what the driver added without a
// notification and reaps completions without their eventfd; it reports progress, and nothing
// once the device is idle (so the loop's window closes).
TEST(BlkUring, PollStartsAndReapsWithoutNotificationOrEventfd) {
  TempDisk disk(4 << 20);
  BlkHarness h;
  ASSERT_TRUE(h.start(uring_opts(disk.path())).ok());
  EXPECT_FALSE(h.dev->poll([&](uint16_t q) { h.dev->process_queue(q); }));  // nothing to do
  std::vector<BlkHarness::Req> reqs;
  for (uint32_t i = 0; i < 3; ++i) {
    const Seg w[] = {{16, false, header(blk::kTypeOut, i * 2048)},
                     {1 << 20, false, filled(1 << 20, static_cast<uint8_t>(i + 3))},
                     {1, true}};
    reqs.push_back(h.submit(w));
  }
  int notified = 0;
  auto notify = [&](uint16_t q) {
    ++notified;
    h.dev->process_queue(q);  // what the transport's handle_notify does
  };
  EXPECT_TRUE(h.dev->poll(notify));  // took the three requests
  EXPECT_GE(notified, 1);
  for (int i = 0; i < 100000 && h.drv[0]->used_idx() != 3; ++i) (void)h.dev->poll(notify);
  ASSERT_EQ(h.drv[0]->used_idx(), 3);
  for (const auto& r : reqs) EXPECT_EQ(h.status(r), blk::kStatusOk);
  EXPECT_EQ(disk.read(2u << 20, 1 << 20), filled(1 << 20, 5));
  EXPECT_FALSE(h.dev->poll(notify));  // idle again
  // Engines without a ring have nothing to poll.
  VirtioBlk::Options o = uring_opts(disk.path());
  o.aio = VirtioBlk::Aio::kInline;
  auto inl = VirtioBlk::open(o);
  ASSERT_TRUE(inl.ok());
  EXPECT_FALSE((*inl)->poll([](uint16_t) {}));
}

TEST(BlkUring, LoneSmallRequestCompletesAtOnce) {
  // QD1 latency path: nothing in flight, ≤ 64 KiB: done inside process_queue, no eventfd.
  TempDisk disk(64 * 1024);
  BlkHarness h;
  ASSERT_TRUE(h.start(uring_opts(disk.path())).ok());
  auto data = filled(4096, 9);
  const Seg w[] = {{16, false, header(blk::kTypeOut, 8)}, {4096, false, data}, {1, true}};
  auto r = h.submit(w);
  h.dev->process_queue(0);
  ASSERT_EQ(h.drv[0]->used_idx(), 1);
  EXPECT_EQ(h.status(r), blk::kStatusOk);
  EXPECT_EQ(disk.read(8 * 512, 4096), data);
  const Seg rd[] = {{16, false, header(blk::kTypeIn, 8)}, {4096, true}, {1, true}};
  r = h.submit(rd);
  h.dev->process_queue(0);
  ASSERT_EQ(h.drv[0]->used_idx(), 2);
  EXPECT_EQ(h.drv[0]->used(1).len, 4097u);
  EXPECT_EQ(h.bytes(r.addrs[1], 4096), data);
  pollfd p{h.dev->completion_fd(), POLLIN, 0};
  EXPECT_EQ(::poll(&p, 1, 0), 0);  // the ring was never used
}

TEST(BlkUring, FileShrunkUnderTheDeviceFailsTheRead) {
  TempDisk disk(64 * 1024);
  BlkHarness h;
  ASSERT_TRUE(h.start(uring_opts(disk.path())).ok());
  ASSERT_EQ(::truncate(disk.path().c_str(), 4096), 0);
  // Sectors 4..15: readv stops at the end of the file (8 sectors short).
  const Seg rd[] = {{16, false, header(blk::kTypeIn, 4)}, {6144, true}, {1, true}};
  auto r = h.submit(rd);
  h.run();
  EXPECT_EQ(h.status(r), blk::kStatusIoErr);
  // Entirely past the end: nothing at all.
  const Seg past[] = {{16, false, header(blk::kTypeIn, 64)}, {512, true}, {1, true}};
  r = h.submit(past);
  h.run();
  EXPECT_EQ(h.status(r), blk::kStatusIoErr);
  ASSERT_EQ(h.drv[0]->used_idx(), 2);
}

TEST(BlkUring, MoreBuffersThanIovMaxRunSynchronously) {
  TempDisk disk(2 << 20);
  BlkHarness h;
  ASSERT_TRUE(h.start(uring_opts(disk.path())).ok());
  // 1100 data descriptors of 512 bytes in one indirect table (> IOV_MAX = 1024).
  std::vector<Seg> segs;
  segs.push_back({16, false, header(blk::kTypeIn, 0)});
  for (int i = 0; i < 1100; ++i) segs.push_back({512, true});
  segs.push_back({1, true});
  static_assert(IOV_MAX < 1100);
  auto r = h.submit(segs, 0, true);
  h.run();
  ASSERT_EQ(h.drv[0]->used_idx(), 1);
  EXPECT_EQ(h.status(r), blk::kStatusOk);
  EXPECT_EQ(h.drv[0]->used(0).len, 1100u * 512 + 1);
  EXPECT_EQ(h.bytes(r.addrs[1099], 512), disk.read(1098 * 512, 512));
}

TEST(BlkUring, TwoQueuesWithEventIdx) {
  TempDisk disk(256 * 1024);
  BlkHarness h;
  auto o = uring_opts(disk.path());
  o.queues = 2;
  ASSERT_TRUE(h.start(o, 64, /*event_idx=*/true).ok());
  std::vector<std::pair<uint16_t, BlkHarness::Req>> reqs;
  for (uint32_t i = 0; i < 40; ++i) {
    const auto q = static_cast<uint16_t>(i % 2);
    const Seg w[] = {{16, false, header(blk::kTypeOut, i * 8)},
                     {4096, false, filled(4096, static_cast<uint8_t>(i))},
                     {1, true}};
    reqs.emplace_back(q, h.submit(w, q));
  }
  h.dev->process_queue(0);
  h.dev->process_queue(1);
  h.dev->wait_idle();
  EXPECT_EQ(h.drv[0]->used_idx(), 20);
  EXPECT_EQ(h.drv[1]->used_idx(), 20);
  for (const auto& [q, r] : reqs) EXPECT_EQ(h.status(r), blk::kStatusOk) << q;
  for (uint32_t i = 0; i < 40; ++i)
    EXPECT_EQ(disk.read(i * 4096, 4096), filled(4096, static_cast<uint8_t>(i)));
}

TEST(BlkUring, RepublishedHeadsStallOnlyTheirQueue) {
  TempDisk disk(64 * 1024);
  BlkHarness h;
  ASSERT_TRUE(h.start(uring_opts(disk.path()), 8).ok());
  // A hostile driver publishes the same head 8 times (the ring's size): every copy is taken
  // (at most `size` outstanding), each completes once with its own used entry.
  const Seg w[] = {{16, false, header(blk::kTypeOut, 0)}, {512, false}, {1, true}};
  auto r = h.submit(w);
  for (int i = 0; i < 7; ++i) h.drv[0]->publish(r.head);
  h.run();
  EXPECT_EQ(h.drv[0]->used_idx(), 8);
  EXPECT_EQ(h.status(r), blk::kStatusOk);
}

TEST(BlkUring, DestroyedWithRequestsInFlight) {
  TempDisk disk(8 << 20);
  BlkHarness h;
  ASSERT_TRUE(h.start(uring_opts(disk.path())).ok());
  for (uint32_t i = 0; i < 6; ++i) {
    const Seg w[] = {{16, false, header(blk::kTypeOut, i * 2048)}, {1 << 20, false}, {1, true}};
    h.submit(w);
  }
  h.dev->process_queue(0);
  h.dev.reset();  // waits for the host I/O, drops the completions
  SUCCEED();
}

}  // namespace
}  // namespace qvm::vdev::testing
