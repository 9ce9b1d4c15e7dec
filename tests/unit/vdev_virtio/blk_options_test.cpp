// virtio-blk options: opening (errors name the file), read-only, O_DIRECT with aligned and
// unaligned guest buffers, capacity rounding, multiple queues with worker threads.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <set>

#include "blk_test_util.hpp"
#include "virtio/virtio_defs.hpp"

namespace qvm::vdev::testing {
namespace {

using virtio::feature_bit;

// One image, one writer: OFD locks, exclusive for read-write, shared for read-only (`lock`).
TEST(BlkOptions, ImagesAreLockedAgainstASecondUser) {
  TempDisk disk(8192);
  VirtioBlk::Options rw;
  rw.path = disk.path();
  VirtioBlk::Options ro = rw;
  ro.read_only = true;
  {
    auto first = VirtioBlk::open(rw);
    ASSERT_TRUE(first.ok()) << first.error().message;
    auto second = VirtioBlk::open(rw);
    ASSERT_FALSE(second.ok());
    EXPECT_NE(second.error().message.find("is in use"), std::string::npos)
        << second.error().message;
    EXPECT_FALSE(VirtioBlk::open(ro).ok());  // a reader next to a writer
    VirtioBlk::Options warn = rw;
    warn.lock = VirtioBlk::Lock::kWarn;
    EXPECT_TRUE(VirtioBlk::open(warn).ok());  // opened anyway, with a warning
    VirtioBlk::Options off = rw;
    off.lock = VirtioBlk::Lock::kOff;
    EXPECT_TRUE(VirtioBlk::open(off).ok());
  }
  // The writer is gone (its lock with its last fd): readers share.
  auto r1 = VirtioBlk::open(ro);
  auto r2 = VirtioBlk::open(ro);
  ASSERT_TRUE(r1.ok() && r2.ok());
  EXPECT_FALSE(VirtioBlk::open(rw).ok());  // a writer next to readers
}

// A FIFO named as a disk is refused at once instead of hanging the open.
TEST(BlkOptions, AFifoIsNoDisk) {
  std::string dir = "/tmp/qvm-blk-fifo-XXXXXX";
  ASSERT_NE(::mkdtemp(dir.data()), nullptr);
  const std::string fifo = dir + "/f";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  VirtioBlk::Options o;
  o.path = fifo;
  o.read_only = true;
  auto r = VirtioBlk::open(o);
  EXPECT_FALSE(r.ok());
  ::unlink(fifo.c_str());
  ::rmdir(dir.c_str());
}

TEST(BlkOptions, OpenErrors) {
  VirtioBlk::Options o;
  o.path = "/nonexistent/qvm-disk.img";
  auto r = VirtioBlk::open(o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("/nonexistent/qvm-disk.img"), std::string::npos);
  o.path = "/tmp";
  EXPECT_FALSE(VirtioBlk::open(o).ok());  // a directory
  TempDisk disk(4096);
  o.path = disk.path();
  o.threads = 0;
  EXPECT_FALSE(VirtioBlk::open(o).ok());
  o.threads = 33;
  EXPECT_FALSE(VirtioBlk::open(o).ok());
  o.threads = 1;
  o.queues = 17;
  EXPECT_FALSE(VirtioBlk::open(o).ok());
  o.queues = 1;
  o.serial = std::string(21, 'x');
  EXPECT_FALSE(VirtioBlk::open(o).ok());
  o.serial = std::string(20, 'x');
  EXPECT_TRUE(VirtioBlk::open(o).ok());
  o.path.clear();
  EXPECT_FALSE(VirtioBlk::open(o).ok());
}

TEST(BlkOptions, CapacityRoundsDown) {
  TempDisk disk(4096 + 100);
  BlkHarness h;
  VirtioBlk::Options o;
  o.path = disk.path();
  ASSERT_TRUE(h.start(o).ok());
  EXPECT_EQ(h.dev->capacity_sectors(), 8u);
  const Seg last[] = {{16, false, header(blk::kTypeIn, 7)}, {512, true}, {1, true}};
  auto r = h.submit(last);
  h.run();
  EXPECT_EQ(h.status(r), blk::kStatusOk);
  const Seg past[] = {{16, false, header(blk::kTypeIn, 8)}, {512, true}, {1, true}};
  r = h.submit(past);
  h.run();
  EXPECT_EQ(h.status(r), blk::kStatusIoErr);
}

TEST(BlkOptions, ReadOnly) {
  TempDisk disk(8192);
  BlkHarness h;
  VirtioBlk::Options o;
  o.path = disk.path();
  o.read_only = true;
  ::chmod(disk.path().c_str(), 0400);  // a read-only file opens too
  ASSERT_TRUE(h.start(o).ok());
  const uint64_t f = h.dev->device_features();
  EXPECT_TRUE(f & feature_bit(blk::kFeatureRo));
  EXPECT_FALSE(f & feature_bit(blk::kFeatureDiscard));
  EXPECT_FALSE(f & feature_bit(blk::kFeatureWriteZeroes));
  const Seg w[] = {{16, false, header(blk::kTypeOut, 0)}, {512, false, filled(512, 1)}, {1, true}};
  auto r = h.submit(w);
  h.run();
  EXPECT_EQ(h.status(r), blk::kStatusIoErr);
  EXPECT_EQ(disk.read(0, 1)[0], TempDisk::pattern(0));
  const Seg z[] = {
      {16, false, header(blk::kTypeWriteZeroes, 0)}, {16, false, segment(0, 1, 0)}, {1, true}};
  r = h.submit(z);
  h.run();
  EXPECT_EQ(h.status(r), blk::kStatusIoErr);
  EXPECT_EQ(disk.read(0, 1)[0], TempDisk::pattern(0));
  const Seg rd[] = {{16, false, header(blk::kTypeIn, 1)}, {512, true}, {1, true}};
  r = h.submit(rd);
  h.run();
  EXPECT_EQ(h.status(r), blk::kStatusOk);
  EXPECT_EQ(h.bytes(r.addrs[1], 512), disk.read(512, 512));
}

class BlkDirect : public ::testing::TestWithParam<BlkMode> {};

TEST_P(BlkDirect, AlignedAndUnalignedBuffers) {
  TempDisk disk(1 << 20, "/var/tmp");  // ext4 here; tmpfs would refuse O_DIRECT
  BlkHarness h;
  VirtioBlk::Options o;
  o.path = disk.path();
  o.direct = true;
  o.threads = GetParam().threads;
  o.aio = GetParam().aio;
  ASSERT_TRUE(h.start(o).ok());
  if (!h.dev->direct()) GTEST_SKIP() << "file system refuses O_DIRECT";
  auto data = filled(4096, 5);
  // Header first (16 bytes) then the data: the data lands at +16 → unaligned → bounce.
  const Seg wu[] = {{16, false, header(blk::kTypeOut, 8)}, {4096, false, data}, {1, true}};
  auto r = h.submit(wu);
  h.run();
  EXPECT_EQ(h.status(r), blk::kStatusOk);
  EXPECT_EQ(disk.read(8 * 512, 4096), data);
  // Aligned read: pad the heap so the data buffer starts on a 4 KiB boundary.
  h.drv[0]->alloc(16);  // header
  h.drv[0]->alloc((0x1000 - (h.drv[0]->alloc(0) & 0xfff)) & 0xfff);
  const Seg rd[] = {{16, false, header(blk::kTypeIn, 8)}, {4096, true}, {1, true}};
  r = h.submit(rd);
  h.run();
  EXPECT_EQ(h.status(r), blk::kStatusOk);
  EXPECT_EQ(h.bytes(r.addrs[1], 4096), data);
  // Unaligned read of a large request (more than one bounce chunk).
  const Seg big[] = {
      {16, false, header(blk::kTypeIn, 0)}, {7, true}, {(1 << 19) - 7, true}, {1, true}};
  r = h.submit(big);
  h.run();
  EXPECT_EQ(h.status(r), blk::kStatusOk);
  auto got = h.bytes(r.addrs[1], 7);
  auto rest = h.bytes(r.addrs[2], (1 << 19) - 7);
  got.insert(got.end(), rest.begin(), rest.end());
  EXPECT_EQ(got, disk.read(0, 1 << 19));
}

INSTANTIATE_TEST_SUITE_P(Engines, BlkDirect, ::testing::ValuesIn(kBlkModes), blk_mode_name);

// tmpfs refuses O_DIRECT before Linux 6.6 (fallback to buffered I/O) and accepts it since.
TEST(BlkOptions, DirectOnTmpfsWorksEitherWay) {
  struct stat st {};
  if (::stat("/dev/shm", &st) != 0) GTEST_SKIP();
  TempDisk disk(8192, "/dev/shm");
  if (!disk.ok()) GTEST_SKIP();
  VirtioBlk::Options o;
  o.path = disk.path();
  o.direct = true;
  auto dev = VirtioBlk::open(o);
  ASSERT_TRUE(dev.ok());
  EXPECT_NE((*dev)->describe().find((*dev)->direct() ? "O_DIRECT" : "buffered"), std::string::npos);
}

TEST(BlkOptions, MultiQueueWithWorkers) {
  TempDisk disk(256 * 1024);
  BlkHarness h;
  VirtioBlk::Options o;
  o.path = disk.path();
  o.threads = 3;
  o.queues = 2;
  ASSERT_TRUE(h.start(o, 64, /*event_idx=*/true).ok());
  EXPECT_TRUE(h.dev->device_features() & feature_bit(blk::kFeatureMq));
  uint8_t nq[2];
  h.dev->read_config(34, nq);
  EXPECT_EQ(nq[0], 2);
  for (uint16_t q = 0; q < 2; ++q) h.drv[q]->set_used_event(0xffff);  // interrupt only at the end
  std::vector<std::pair<uint16_t, BlkHarness::Req>> reqs;
  for (uint32_t i = 0; i < 50; ++i) {
    const auto q = static_cast<uint16_t>(i % 2);
    const Seg w[] = {{16, false, header(blk::kTypeOut, i * 8)},
                     {4096, false, filled(4096, static_cast<uint8_t>(i))},
                     {1, true}};
    reqs.emplace_back(q, h.submit(w, q, true));
  }
  h.dev->process_queue(0);
  h.dev->process_queue(1);
  h.dev->wait_idle();
  for (uint16_t q = 0; q < 2; ++q) {
    ASSERT_EQ(h.drv[q]->used_idx(), 25);
    std::set<uint32_t> heads;
    for (uint16_t i = 0; i < 25; ++i) heads.insert(h.drv[q]->used(i).id);
    EXPECT_EQ(heads.size(), 25u);
  }
  for (uint32_t i = 0; i < 50; ++i) {
    EXPECT_EQ(h.status(reqs[i].second), blk::kStatusOk);
    EXPECT_EQ(disk.read(i * 4096, 4096), filled(4096, static_cast<uint8_t>(i)));
  }
  EXPECT_EQ(h.irq.used.load(), 0);  // used_event never reached: suppressed (§2.7.10)
}

}  // namespace
}  // namespace qvm::vdev::testing
