// virtio-blk request throughput: inline execution vs worker threads (the `threads` default,
// docs/virtio.md). Disabled by default; run with
//   unit_vdev_virtio --gtest_also_run_disabled_tests --gtest_filter='*BlkBench*'
// Requests are 4 KiB at random sectors of a 64 MiB file, published in batches of `depth`
// (queue depth) on one queue of 256 with fixed buffers, so the numbers are device cost + host I/O.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <random>

#include "blk_test_util.hpp"
#include "virtio/virtio_defs.hpp"

namespace qvm::vdev::testing {
namespace {

struct BenchResult {
  double iops;
};

BenchResult bench(const std::string& path, uint32_t threads, bool single_worker, bool direct,
                  uint32_t type, uint32_t depth, uint32_t total) {
  memory::GuestMemory mem;
  (void)mem.add_region(0, 8ull << 20, false);
  std::vector<virtio::Queue> queues;
  queues.emplace_back(VirtioBlk::kQueueSize);
  MockDriver drv(mem, 256);
  drv.configure(queues[0]);
  CountingInterrupt irq;
  VirtioBlk::Options o;
  o.path = path;
  o.threads = threads;
  o.single_worker = single_worker;
  o.direct = direct;
  auto dev = VirtioBlk::open(o);
  if (!dev) return {0};
  virtio::ActivationContext ctx{mem, queues, irq, 0};
  if (!(*dev)->activate(ctx)) return {0};
  // Slot k: descriptors 3k (header), 3k+1 (4 KiB data, page aligned), 3k+2 (status).
  const uint64_t hdr0 = 0x100000, data0 = 0x200000, st0 = 0x180000;
  for (uint16_t k = 0; k < depth; ++k) {
    const auto d = static_cast<uint16_t>(3 * k);
    const uint16_t dflag = type == blk::kTypeIn ? virtio::kDescFlagWrite : 0;
    drv.set_desc(d, {hdr0 + 16ull * k, 16, virtio::kDescFlagNext, static_cast<uint16_t>(d + 1)});
    drv.set_desc(d + 1u,
                 {data0 + 4096ull * k, 4096, static_cast<uint16_t>(dflag | virtio::kDescFlagNext),
                  static_cast<uint16_t>(d + 2)});
    drv.set_desc(d + 2u, {st0 + k, 1, virtio::kDescFlagWrite, 0});
  }
  std::mt19937_64 rng(1);
  const uint64_t sectors = (*dev)->capacity_sectors() / 8;
  uint16_t used_seen = 0;
  const auto t0 = std::chrono::steady_clock::now();
  for (uint32_t done = 0; done < total; done += depth) {
    for (uint16_t k = 0; k < depth; ++k) {
      (void)mem.write_obj(hdr0 + 16ull * k, blk::ReqHeader{type, 0, (rng() % sectors) * 8});
      drv.publish(static_cast<uint16_t>(3 * k));
    }
    (*dev)->process_queue(0);
    (*dev)->wait_idle();
    used_seen = static_cast<uint16_t>(used_seen + depth);
    if (drv.used_idx() != used_seen) return {0};
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return {total / s};
}

TEST(BlkBench, DISABLED_InlineVsWorkers) {
  TempDisk disk(64ull << 20, "/var/tmp");
  ASSERT_TRUE(disk.ok());
  struct Mode {
    const char* name;
    uint32_t threads;
    bool single;
  };
  const Mode modes[] = {{"inline", 1, false},
                        {"1 worker", 1, true},
                        {"2 workers", 2, false},
                        {"4 workers", 4, false},
                        {"8 workers", 8, false}};
  for (bool direct : {false, true}) {
    for (uint32_t type : {blk::kTypeIn, blk::kTypeOut}) {
      for (uint32_t depth : {1u, 32u}) {
        std::printf("%-8s %-4s qd%-3u", direct ? "O_DIRECT" : "buffered",
                    type == blk::kTypeIn ? "read" : "write", depth);
        for (const auto& m : modes) {
          const uint32_t total = direct ? 4096 : 32768;
          auto r = bench(disk.path(), m.threads, m.single, direct, type, depth, total);
          std::printf("  %s %8.0f", m.name, r.iops);
        }
        std::printf("\n");
      }
    }
  }
}

}  // namespace
}  // namespace qvm::vdev::testing
