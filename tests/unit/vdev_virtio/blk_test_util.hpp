// Shared helpers for the virtio-blk tests: a temporary backing file, a device activated on
// MockDriver queues, and request builders (virtio 1.2 §5.2.6 layouts).
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "vdev/virtio_blk/virtio_blk.hpp"
#include "virtio/queue/testing/mock_driver.hpp"

namespace qvm::vdev::testing {

using virtio::testing::MockDriver;
using Seg = MockDriver::Seg;

class CountingInterrupt final : public virtio::VirtioInterrupt {
 public:
  std::atomic<int> used{0};
  void signal_used(uint16_t) override { ++used; }
  void signal_config() override {}
};

// A temporary file of `bytes` bytes filled with a position-derived pattern, removed at exit.
class TempDisk {
 public:
  explicit TempDisk(uint64_t bytes, const char* dir = "/tmp") {
    path_ = std::string(dir) + "/qvm-blk-XXXXXX";
    fd_ = ::mkstemp(path_.data());
    if (fd_ < 0) return;
    std::vector<uint8_t> buf(static_cast<size_t>(bytes));
    for (size_t i = 0; i < buf.size(); ++i) buf[i] = pattern(i);
    if (::pwrite(fd_, buf.data(), buf.size(), 0) != static_cast<ssize_t>(buf.size())) {
      ::close(fd_);
      fd_ = -1;
    }
  }
  ~TempDisk() {
    if (fd_ >= 0) ::close(fd_);
    ::unlink(path_.c_str());
  }
  TempDisk(const TempDisk&) = delete;
  TempDisk& operator=(const TempDisk&) = delete;
  static uint8_t pattern(uint64_t off) {
    return static_cast<uint8_t>((off * 7 + off / 512) & 0xff);
  }
  bool ok() const { return fd_ >= 0; }
  const std::string& path() const { return path_; }
  std::vector<uint8_t> read(uint64_t off, size_t len) const {
    std::vector<uint8_t> v(len);
    if (::pread(fd_, v.data(), len, static_cast<off_t>(off)) != static_cast<ssize_t>(len))
      v.clear();
    return v;
  }
  void write(uint64_t off, const std::vector<uint8_t>& v) const {
    ASSERT_EQ(::pwrite(fd_, v.data(), v.size(), static_cast<off_t>(off)),
              static_cast<ssize_t>(v.size()));
  }

 private:
  std::string path_;
  int fd_ = -1;
};

inline std::vector<uint8_t> header(uint32_t type, uint64_t sector) {
  blk::ReqHeader h{type, 0, sector};
  std::vector<uint8_t> v(sizeof h);
  std::memcpy(v.data(), &h, sizeof h);
  return v;
}

inline std::vector<uint8_t> segment(uint64_t sector, uint32_t n, uint32_t flags) {
  blk::DiscardWriteZeroes s{sector, n, flags};
  std::vector<uint8_t> v(sizeof s);
  std::memcpy(v.data(), &s, sizeof s);
  return v;
}

inline std::vector<uint8_t> filled(size_t n, uint8_t seed) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(seed + i * 13);
  return v;
}

// An execution engine for parameterised tests.
struct BlkMode {
  VirtioBlk::Aio aio;
  uint32_t threads;
  const char* name;
};
inline const BlkMode kBlkModes[] = {{VirtioBlk::Aio::kInline, 1, "inline"},
                                    {VirtioBlk::Aio::kThreads, 4, "threads4"},
                                    {VirtioBlk::Aio::kUring, 1, "io_uring"}};
inline std::string blk_mode_name(const ::testing::TestParamInfo<BlkMode>& p) {
  return p.param.name;
}

// A device on `nq` queues of size `qsize` in 16 MiB of guest memory.
struct BlkHarness {
  memory::GuestMemory mem;
  std::vector<virtio::Queue> queues;
  std::vector<std::unique_ptr<MockDriver>> drv;
  CountingInterrupt irq;
  std::shared_ptr<VirtioBlk> dev;

  Status start(const VirtioBlk::Options& o, uint16_t qsize = 64, bool event_idx = false) {
    QVM_TRY(mem.add_region(0, 16ull << 20, false));
    for (uint16_t i = 0; i < o.queues; ++i) queues.emplace_back(VirtioBlk::kQueueSize);
    for (uint16_t i = 0; i < o.queues; ++i) {
      // Rings of queue i at i MiB; buffers follow them.
      drv.push_back(std::make_unique<MockDriver>(mem, qsize, uint64_t{i} << 20));
      drv[i]->configure(queues[i], event_idx);
    }
    dev = QVM_TRY(VirtioBlk::open(o));
    virtio::ActivationContext ctx{mem, queues, irq, 0};
    return dev->activate(ctx);
  }

  struct Req {
    uint16_t head;
    uint64_t status_addr;
    std::vector<uint64_t> addrs;
  };
  // Builds and publishes a chain on queue `q`; the status is the last byte of the last segment.
  Req submit(std::span<const Seg> segs, uint16_t q = 0, bool indirect = false) {
    uint16_t h = drv[q]->add_chain(segs, indirect);
    Req r{h, 0, {}};
    for (size_t i = 0; i < segs.size(); ++i) r.addrs.push_back(drv[q]->seg_addr(i));
    r.status_addr = r.addrs.back() + segs.back().len - 1;
    drv[q]->publish(h);
    return r;
  }
  void run(uint16_t q = 0) {
    dev->process_queue(q);
    dev->wait_idle();
  }
  uint8_t status(const Req& r) const {
    auto v = mem.read_obj<uint8_t>(r.status_addr);
    return v ? *v : 0xff;
  }
  std::vector<uint8_t> bytes(uint64_t addr, size_t n) const {
    std::vector<uint8_t> v(n);
    (void)mem.read(addr, v);
    return v;
  }
};

}  // namespace qvm::vdev::testing
