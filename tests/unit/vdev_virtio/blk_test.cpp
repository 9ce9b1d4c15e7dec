// virtio-blk (virtio 1.2 §5.2) driven through MockDriver queues against a temporary file.
// Every test runs with each engine: inline, 4 worker threads, io_uring.
#include <gtest/gtest.h>

#include <set>

#include "blk_test_util.hpp"
#include "virtio/virtio_defs.hpp"

namespace qvm::vdev::testing {
namespace {

using virtio::feature_bit;
constexpr uint64_t kDiskBytes = 64 * 1024;  // 128 sectors

struct BlkTest : ::testing::TestWithParam<BlkMode> {
  TempDisk disk{kDiskBytes};
  BlkHarness h;
  VirtioBlk::Options opts() const {
    VirtioBlk::Options o;
    o.path = disk.path();
    o.threads = GetParam().threads;
    o.aio = GetParam().aio;
    o.serial = "QVM-SERIAL-1";
    return o;
  }
  void SetUp() override {
    ASSERT_TRUE(disk.ok());
    auto s = h.start(opts());
    ASSERT_TRUE(s.ok()) << s.error().message;
  }
  // One request on queue 0, run to completion; returns its status byte.
  uint8_t one(std::span<const Seg> segs, BlkHarness::Req* out = nullptr) {
    auto r = h.submit(segs);
    h.run();
    if (out) *out = r;
    return h.status(r);
  }
  uint32_t last_used_len() const { return h.drv[0]->used(h.drv[0]->used_idx() - 1).len; }
};

TEST_P(BlkTest, IdentityFeaturesAndConfig) {
  EXPECT_EQ(h.dev->device_type(), 2u);
  const uint64_t f = h.dev->device_features();
  for (uint32_t bit : {blk::kFeatureSegMax, blk::kFeatureBlkSize, blk::kFeatureFlush,
                       blk::kFeatureDiscard, blk::kFeatureWriteZeroes})
    EXPECT_TRUE(f & feature_bit(bit)) << bit;
  EXPECT_FALSE(f & feature_bit(blk::kFeatureRo));
  EXPECT_FALSE(f & feature_bit(blk::kFeatureMq));
  EXPECT_EQ(h.dev->config_size(), 72u);
  blk::Config c{};
  std::span<uint8_t> raw(reinterpret_cast<uint8_t*>(&c), sizeof c);  // SAFETY: POD bytes
  h.dev->read_config(0, raw);
  EXPECT_EQ(c.capacity, kDiskBytes / 512);
  EXPECT_EQ(c.seg_max, 254u);
  EXPECT_EQ(c.blk_size, 512u);
  EXPECT_EQ(c.num_queues, 1u);
  EXPECT_EQ(c.max_discard_seg, VirtioBlk::kMaxDiscardSeg);
  EXPECT_EQ(c.max_write_zeroes_sectors, VirtioBlk::kMaxDiscardSectors);
  EXPECT_EQ(c.write_zeroes_may_unmap, 1);
  // Partial read at an offset (how transports access it: 1/2/4/8 bytes).
  uint8_t b4[4];
  h.dev->read_config(20, b4);
  EXPECT_EQ(b4[0] | (b4[1] << 8), 512);
  EXPECT_EQ(h.dev->worker_threads(), GetParam().aio == VirtioBlk::Aio::kThreads ? 4u : 0u);
  EXPECT_EQ(h.dev->aio(), GetParam().aio);
  EXPECT_EQ(h.dev->completion_fd() >= 0, GetParam().aio == VirtioBlk::Aio::kUring);
}

TEST_P(BlkTest, WriteReachesTheFile) {
  auto data = filled(1024, 3);
  const Seg segs[] = {{16, false, header(blk::kTypeOut, 3)}, {1024, false, data}, {1, true}};
  EXPECT_EQ(one(segs), blk::kStatusOk);
  EXPECT_EQ(last_used_len(), 1u);
  EXPECT_EQ(disk.read(3 * 512, 1024), data);
  EXPECT_EQ(disk.read(2 * 512, 1)[0], TempDisk::pattern(2 * 512));  // neighbours untouched
  EXPECT_EQ(disk.read(5 * 512, 1)[0], TempDisk::pattern(5 * 512));
  EXPECT_GE(h.irq.used.load(), 1);
}

TEST_P(BlkTest, ReadFromTheFile) {
  const Seg segs[] = {{16, false, header(blk::kTypeIn, 10)}, {1024, true}, {1, true}};
  BlkHarness::Req r;
  EXPECT_EQ(one(segs, &r), blk::kStatusOk);
  EXPECT_EQ(last_used_len(), 1025u);
  EXPECT_EQ(h.bytes(r.addrs[1], 1024), disk.read(10 * 512, 1024));
}

TEST_P(BlkTest, OddBufferSplitsAndSharedDescriptors) {
  // Header and data in one readable descriptor; data and status in one writable descriptor.
  auto data = filled(512, 9);
  auto hd = header(blk::kTypeOut, 7);
  hd.insert(hd.end(), data.begin(), data.end());
  const Seg w[] = {{528, false, hd}, {1, true}};
  EXPECT_EQ(one(w), blk::kStatusOk);
  EXPECT_EQ(disk.read(7 * 512, 512), data);
  const Seg r[] = {{16, false, header(blk::kTypeIn, 7)}, {100, true}, {412, true}, {1, true}};
  BlkHarness::Req req;
  EXPECT_EQ(one(r, &req), blk::kStatusOk);
  auto got = h.bytes(req.addrs[1], 100);
  auto rest = h.bytes(req.addrs[2], 412);
  got.insert(got.end(), rest.begin(), rest.end());
  EXPECT_EQ(got, data);
  const Seg r2[] = {{16, false, header(blk::kTypeIn, 7)}, {513, true}};
  EXPECT_EQ(one(r2, &req), blk::kStatusOk);
  EXPECT_EQ(h.bytes(req.addrs[1], 512), data);
  EXPECT_EQ(last_used_len(), 513u);
}

TEST_P(BlkTest, FlushAndGetId) {
  const Seg f[] = {{16, false, header(blk::kTypeFlush, 0)}, {1, true}};
  EXPECT_EQ(one(f), blk::kStatusOk);
  EXPECT_EQ(last_used_len(), 1u);
  const Seg id[] = {{16, false, header(blk::kTypeGetId, 0)}, {20, true}, {1, true}};
  BlkHarness::Req r;
  EXPECT_EQ(one(id, &r), blk::kStatusOk);
  EXPECT_EQ(last_used_len(), 21u);
  auto b = h.bytes(r.addrs[1], 20);
  EXPECT_EQ(std::string(b.begin(), b.begin() + 12), "QVM-SERIAL-1");
  EXPECT_EQ(b[12], 0);
  EXPECT_EQ(b[19], 0);
}

TEST_P(BlkTest, GetIdShortBufferFails) {
  const Seg id[] = {{16, false, header(blk::kTypeGetId, 0)}, {19, true}, {1, true}};
  EXPECT_EQ(one(id), blk::kStatusIoErr);
  EXPECT_EQ(last_used_len(), 1u);
}

TEST_P(BlkTest, DiscardAndWriteZeroes) {
  const std::vector<uint8_t> zeros(4096, 0);
  auto segs_bytes = [](std::initializer_list<std::vector<uint8_t>> l) {
    auto v = header(0, 0);
    v.clear();
    for (const auto& s : l) v.insert(v.end(), s.begin(), s.end());
    return v;
  };
  // DISCARD of sectors 8..15 (one 4 KiB block): the file reads back zeros (hole).
  const Seg d[] = {{16, false, header(blk::kTypeDiscard, 0)},
                   {16, false, segs_bytes({segment(8, 8, 0)})},
                   {1, true}};
  EXPECT_EQ(one(d), blk::kStatusOk);
  EXPECT_EQ(disk.read(8 * 512, 4096), zeros);
  // WRITE_ZEROES, two segments, one with unmap.
  const Seg z[] = {{16, false, header(blk::kTypeWriteZeroes, 0)},
                   {32, false, segs_bytes({segment(16, 8, 0), segment(32, 8, 1)})},
                   {1, true}};
  EXPECT_EQ(one(z), blk::kStatusOk);
  EXPECT_EQ(disk.read(16 * 512, 4096), zeros);
  EXPECT_EQ(disk.read(32 * 512, 4096), zeros);
  EXPECT_EQ(disk.read(24 * 512, 1)[0], TempDisk::pattern(24 * 512));
}

TEST_P(BlkTest, DiscardSegmentErrors) {
  auto req = [](uint32_t type, std::vector<uint8_t> payload) {
    return std::vector<Seg>{{16, false, header(type, 0)},
                            {static_cast<uint32_t>(payload.size()), false, payload},
                            {1, true}};
  };
  auto cat = [](std::vector<uint8_t> a, const std::vector<uint8_t>& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
  };
  // Out of range (the first valid segment must not be applied either).
  EXPECT_EQ(one(req(blk::kTypeWriteZeroes, cat(segment(0, 8, 0), segment(127, 2, 0)))),
            blk::kStatusIoErr);
  EXPECT_EQ(disk.read(0, 1)[0], TempDisk::pattern(0));
  EXPECT_EQ(one(req(blk::kTypeDiscard, segment(~0ull - 3, 8, 0))), blk::kStatusIoErr);
  EXPECT_EQ(one(req(blk::kTypeDiscard, segment(0, VirtioBlk::kMaxDiscardSectors + 1, 0))),
            blk::kStatusIoErr);
  // Unmap on DISCARD and reserved flags are unsupported (§5.2.6.2).
  EXPECT_EQ(one(req(blk::kTypeDiscard, segment(0, 8, 1))), blk::kStatusUnsupp);
  EXPECT_EQ(one(req(blk::kTypeWriteZeroes, segment(0, 8, 2))), blk::kStatusUnsupp);
  // Partial segment, too many segments.
  EXPECT_EQ(one(req(blk::kTypeDiscard, std::vector<uint8_t>(20, 0))), blk::kStatusIoErr);
  std::vector<uint8_t> many;
  for (int i = 0; i < 33; ++i) many = cat(many, segment(0, 1, 0));
  EXPECT_EQ(one(req(blk::kTypeDiscard, many)), blk::kStatusIoErr);
  // No segment at all.
  const Seg none[] = {{16, false, header(blk::kTypeDiscard, 0)}, {1, true}};
  EXPECT_EQ(one(none), blk::kStatusIoErr);
  EXPECT_EQ(disk.read(0, 1)[0], TempDisk::pattern(0));
}

TEST_P(BlkTest, MalformedRequests) {
  // Short header: 8 readable bytes.
  const Seg short_hdr[] = {{8, false, header(blk::kTypeIn, 0)}, {512, true}, {1, true}};
  EXPECT_EQ(one(short_hdr), blk::kStatusIoErr);
  // No status byte: nothing writable. Returned with used length 0.
  const Seg no_status[] = {{16, false, header(blk::kTypeFlush, 0)}};
  auto before = h.drv[0]->used_idx();
  auto r = h.submit(no_status);
  h.run();
  ASSERT_EQ(h.drv[0]->used_idx(), static_cast<uint16_t>(before + 1));
  EXPECT_EQ(h.drv[0]->used(before).id, r.head);
  EXPECT_EQ(h.drv[0]->used(before).len, 0u);
  // Status byte read-only (the last descriptor is device-readable).
  const Seg ro_status[] = {{16, false, header(blk::kTypeOut, 0)}, {512, false}, {1, false}};
  EXPECT_EQ(one(ro_status), 0);  // untouched
  EXPECT_EQ(last_used_len(), 0u);
  EXPECT_EQ(disk.read(0, 1)[0], TempDisk::pattern(0));
  // Sector beyond the capacity, straddling the end, and overflowing sector * 512 + len.
  const Seg beyond[] = {{16, false, header(blk::kTypeIn, 128)}, {512, true}, {1, true}};
  EXPECT_EQ(one(beyond), blk::kStatusIoErr);
  const Seg straddle[] = {{16, false, header(blk::kTypeOut, 127)}, {1024, false}, {1, true}};
  EXPECT_EQ(one(straddle), blk::kStatusIoErr);
  const Seg overflow[] = {{16, false, header(blk::kTypeIn, ~0ull)}, {512, true}, {1, true}};
  EXPECT_EQ(one(overflow), blk::kStatusIoErr);
  const Seg overflow2[] = {
      {16, false, header(blk::kTypeOut, (~0ull >> 9) + 1)}, {512, false}, {1, true}};
  EXPECT_EQ(one(overflow2), blk::kStatusIoErr);
  // Data not a multiple of 512.
  const Seg odd[] = {{16, false, header(blk::kTypeOut, 0)}, {100, false}, {1, true}};
  EXPECT_EQ(one(odd), blk::kStatusIoErr);
  EXPECT_EQ(disk.read(0, 1)[0], TempDisk::pattern(0));
  // Unknown and unimplemented types.
  for (uint32_t t : {2u, 3u, blk::kTypeGetLifetime, blk::kTypeSecureErase, 0xdeadu}) {
    const Seg u[] = {{16, false, header(t, 0)}, {1, true}};
    EXPECT_EQ(one(u), blk::kStatusUnsupp) << t;
  }
  // A last sector read at the edge is fine.
  const Seg edge[] = {{16, false, header(blk::kTypeIn, 127)}, {512, true}, {1, true}};
  EXPECT_EQ(one(edge), blk::kStatusOk);
}

TEST_P(BlkTest, MalformedChainIsReturnedEmpty) {
  // A descriptor pointing outside guest memory: Queue::next() completes it with length 0.
  h.drv[0]->set_desc(0, virtio::VirtqDesc{1ull << 40, 16, 0, 0});
  h.drv[0]->publish(0);
  h.run();
  ASSERT_EQ(h.drv[0]->used_idx(), 1);
  EXPECT_EQ(h.drv[0]->used(0).len, 0u);
  EXPECT_FALSE(h.queues[0].needs_reset());
}

TEST_P(BlkTest, ManyRequestsCompleteExactlyOnce) {
  // 30 writes of distinct sectors and 30 reads, in flight together (indirect chains).
  std::vector<BlkHarness::Req> reqs;
  for (uint32_t i = 0; i < 30; ++i) {
    const Seg w[] = {{16, false, header(blk::kTypeOut, i)},
                     {512, false, filled(512, static_cast<uint8_t>(i))},
                     {1, true}};
    reqs.push_back(h.submit(w, 0, true));
    const Seg r[] = {{16, false, header(blk::kTypeIn, 64 + i)}, {512, true}, {1, true}};
    reqs.push_back(h.submit(r, 0, true));
  }
  h.run();
  ASSERT_EQ(h.drv[0]->used_idx(), 60);
  std::multiset<uint32_t> heads;
  for (uint16_t i = 0; i < 60; ++i) heads.insert(h.drv[0]->used(i).id);
  for (const auto& r : reqs) {
    EXPECT_EQ(heads.count(r.head), 1u);
    EXPECT_EQ(h.status(r), blk::kStatusOk);
  }
  for (uint32_t i = 0; i < 30; ++i) {
    EXPECT_EQ(disk.read(i * 512, 512), filled(512, static_cast<uint8_t>(i)));
    EXPECT_EQ(h.bytes(reqs[2 * i + 1].addrs[1], 512), disk.read((64 + i) * 512, 512));
  }
  EXPECT_GE(h.irq.used.load(), 1);
}

// The writes do not overlap: requests in flight together have no order (virtio 1.2 §5.2.6), so
// with worker threads an earlier overlapping write may land last.
TEST_P(BlkTest, FlushAfterWritesInOneBatch) {
  std::vector<BlkHarness::Req> reqs;
  for (uint32_t i = 0; i < 30; ++i) {
    const Seg w[] = {{16, false, header(blk::kTypeOut, i * 2)},
                     {1024, false, filled(1024, static_cast<uint8_t>(i + 1))},
                     {1, true}};
    reqs.push_back(h.submit(w, 0, true));
  }
  const Seg f[] = {{16, false, header(blk::kTypeFlush, 0)}, {1, true}};
  auto flush = h.submit(f, 0, true);
  h.run();
  EXPECT_EQ(h.status(flush), blk::kStatusOk);
  for (const auto& r : reqs) EXPECT_EQ(h.status(r), blk::kStatusOk);
  for (uint32_t i = 0; i < 30; ++i)
    EXPECT_EQ(disk.read(i * 2 * 512, 1024), filled(1024, static_cast<uint8_t>(i + 1)));
}

TEST_P(BlkTest, ResetWithRequestsQueued) {
  for (uint32_t i = 0; i < 40; ++i) {
    const Seg w[] = {{16, false, header(blk::kTypeOut, i)}, {4096, false}, {1, true}};
    h.submit(w, 0, true);
  }
  h.dev->process_queue(0);
  h.dev->reset();           // drops what is queued, waits for what runs
  h.dev->process_queue(0);  // not activated: ignored
  virtio::ActivationContext ctx{h.mem, h.queues, h.irq, 0};
  ASSERT_TRUE(h.dev->activate(ctx).ok());
}

INSTANTIATE_TEST_SUITE_P(Engines, BlkTest, ::testing::ValuesIn(kBlkModes), blk_mode_name);

}  // namespace
}  // namespace qvm::vdev::testing
