// virtio-blk (virtio 1.2 §5.2): device id 2 over the transport-free virtio device interface,
// backed by a host file or block device.
//
// Implemented: request types IN, OUT, FLUSH, GET_ID, DISCARD, WRITE_ZEROES (§5.2.6); others get
// VIRTIO_BLK_S_UNSUPP. Features SEG_MAX, BLK_SIZE, FLUSH, RO (`hostdev <PATH`), DISCARD and
// WRITE_ZEROES (fallocate PUNCH_HOLE / ZERO_RANGE), MQ (`queues N`); the configuration space of
// §5.2.4 (72 bytes, read-only to the driver). Data moves with preadv/pwritev straight between
// the file and guest buffers (ChainReader/ChainWriter::iovecs); with `dio enable` the file is
// opened O_DIRECT and only requests whose guest buffers are not 512-aligned go through a bounce
// buffer. A file system that refuses O_DIRECT (tmpfs) falls back to buffered I/O with a warning.
// Not implemented: SIZE_MAX, GEOMETRY, TOPOLOGY, CONFIG_WCE (the device is write-through from the
// driver's view: FLUSH is honoured, writeback reads 0), GET_LIFETIME, SECURE_ERASE, zoned devices.
//
// Guest input is hostile (docs/virtio.md): the header must be 16 readable bytes, the status is
// the last device-writable byte (a chain without one is returned with used length 0, logged);
// sector ranges are checked against the capacity without overflow; IN/OUT data must be a
// multiple of 512 bytes; DISCARD/WRITE_ZEROES segments are checked one by one (count, reserved
// flags, range) before anything is applied. Failures complete with VIRTIO_BLK_S_IOERR (or UNSUPP
// for unknown types and flags §5.2.6.2 says are unsupported).
//
// Engines (`aio`, a qvm extension): inline, worker threads, io_uring (virtio_blk_uring.cpp: IN,
// OUT and FLUSH as SQEs, completions reaped by the owner's event loop via completion_fd()).
//
// Threading (`threads N`): with threads = 1 requests are executed inline on the thread that
// delivers the notification (the event loop); with N > 1, process_queue() only pops chains (under
// the queue's lock) and N worker threads execute them, each taking a share of the pending
// requests, pushing its completions to the used ring under the queue's lock and raising at most
// one interrupt per share (needs_notification() decides, EVENT_IDX included). A FLUSH waits for
// every request popped before it to finish its host I/O and then calls fdatasync(); no request
// is reported done before its system call returned. reset() waits for requests in progress and
// drops queued ones. Per queue at most `size` requests are outstanding; a guest that republishes
// heads to exceed that stalls only its own queue.
//
// Inline vs workers, measured at the device level (tests/unit/vdev_virtio/blk_bench_test.cpp,
// Release, 2-core VM, 4 KiB random requests on ext4 over virtio, IOPS):
//                       inline   1 worker  2 workers  4 workers  8 workers
//   buffered read qd1   793k     154k      95k        52k        31k
//   buffered read qd32  804k     564k      518k       481k       412k
//   buffered write qd32 102k     98k       89k        117k       108k
//   O_DIRECT read qd1   15.6k    13.2k     16.0k      14.1k      14.1k
//   O_DIRECT read qd32  17.4k    15.4k     23.6k      41.4k      52.8k
//   O_DIRECT write qd32 9.7k     13.2k     19.1k      41.5k      63.7k
// One worker buys no parallelism and costs a wake-up per batch: 2-5x slower on cached data,
// within run-to-run noise on O_DIRECT (single runs, ±30%), so threads 1 runs inline. Workers pay
// off only for deep queues on slow (uncached, O_DIRECT) storage, where the host device works on
// requests in parallel; on cached data they cost 2-25x. Hence the default stays 1 and `threads` is
// worth raising to about the number of concurrent guest streams (the QNX release notes, J2877688,
// recommend at most 4). Inline execution does block the notifying thread (the event loop) for the
// duration of host I/O. Whole-VM figures for inline, workers and io_uring against QEMU, buffered
// and O_DIRECT, are in docs/performance.md; they set default_aio().

#pragma once

#include <sys/uio.h>

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "base/result.hpp"
#include "base/unique_fd.hpp"
#include "virtio/device.hpp"

namespace qvm::vdev {

namespace blk {

// Feature bits (§5.2.3).
inline constexpr uint32_t kFeatureSizeMax = 1;
inline constexpr uint32_t kFeatureSegMax = 2;
inline constexpr uint32_t kFeatureRo = 5;
inline constexpr uint32_t kFeatureBlkSize = 6;
inline constexpr uint32_t kFeatureFlush = 9;
inline constexpr uint32_t kFeatureMq = 12;
inline constexpr uint32_t kFeatureDiscard = 13;
inline constexpr uint32_t kFeatureWriteZeroes = 14;

// Request types and status values (§5.2.6).
inline constexpr uint32_t kTypeIn = 0;
inline constexpr uint32_t kTypeOut = 1;
inline constexpr uint32_t kTypeFlush = 4;
inline constexpr uint32_t kTypeGetId = 8;
inline constexpr uint32_t kTypeGetLifetime = 10;
inline constexpr uint32_t kTypeDiscard = 11;
inline constexpr uint32_t kTypeWriteZeroes = 13;
inline constexpr uint32_t kTypeSecureErase = 14;
inline constexpr uint8_t kStatusOk = 0;
inline constexpr uint8_t kStatusIoErr = 1;
inline constexpr uint8_t kStatusUnsupp = 2;

inline constexpr uint32_t kSectorSize = 512;
inline constexpr uint32_t kIdBytes = 20;              // VIRTIO_BLK_ID_BYTES
inline constexpr uint32_t kWriteZeroesFlagUnmap = 1;  // §5.2.6

struct ReqHeader {  // struct virtio_blk_req, the device-readable header (§5.2.6)
  uint32_t type;
  uint32_t reserved;
  uint64_t sector;
};
static_assert(sizeof(ReqHeader) == 16);

struct DiscardWriteZeroes {  // struct virtio_blk_discard_write_zeroes (§5.2.6)
  uint64_t sector;
  uint32_t num_sectors;
  uint32_t flags;
};
static_assert(sizeof(DiscardWriteZeroes) == 16);

struct Config {  // struct virtio_blk_config (§5.2.4), little-endian host assumed (x86-64)
  uint64_t capacity;
  uint32_t size_max;
  uint32_t seg_max;
  uint16_t geo_cylinders;
  uint8_t geo_heads;
  uint8_t geo_sectors;
  uint32_t blk_size;
  uint8_t physical_block_exp;
  uint8_t alignment_offset;
  uint16_t min_io_size;
  uint32_t opt_io_size;
  uint8_t writeback;
  uint8_t unused0;
  uint16_t num_queues;
  uint32_t max_discard_sectors;
  uint32_t max_discard_seg;
  uint32_t discard_sector_alignment;
  uint32_t max_write_zeroes_sectors;
  uint32_t max_write_zeroes_seg;
  uint8_t write_zeroes_may_unmap;
  uint8_t unused1[3];
  uint32_t max_secure_erase_sectors;
  uint32_t max_secure_erase_seg;
  uint32_t secure_erase_sector_alignment;
};
static_assert(sizeof(Config) == 72);

}  // namespace blk

class VirtioBlk final : public virtio::VirtioDevice {
 public:
  // How requests are executed (`aio`, a qvm extension): on the notifying thread, on `threads`
  // worker threads, or submitted to an io_uring whose completions the owner reaps
  // (completion_fd()/on_completion()). kDefault: default_aio().
  enum class Aio : uint8_t { kDefault, kInline, kThreads, kUring };
  enum class Lock : uint8_t { kOn, kWarn, kOff };  // `lock`: the image's OFD lock
  static constexpr uint16_t kQueueSize = 256;
  static constexpr uint32_t kMaxThreads = 32;
  static constexpr uint16_t kMaxQueues = 16;
  static constexpr uint32_t kMaxDiscardSectors = 1u << 22;  // 2 GiB per segment
  static constexpr uint32_t kMaxDiscardSeg = 32;
  static constexpr uint32_t kDiscardAlignment = 8;  // sectors (4 KiB, a file system block)
  // Default for `threads`: inline execution (measurements in the file header).
  static constexpr uint32_t kDefaultThreads = 1;
  // `poll` default and limit (microseconds): docs/performance.md, "busy polling".
  static constexpr uint32_t kDefaultPollUs = 50;
  static constexpr uint32_t kMaxPollUs = 1000;
  // The engine when `aio` is not given (measurements in docs/performance.md): worker threads if
  // threads > 1; io_uring for O_DIRECT (5x inline at queue depth 32, equal at depth 1); inline
  // for buffered I/O (page-cache copies: as fast as io_uring or faster, no thread hand-off).
  static Aio default_aio(uint32_t threads, bool direct) {
    if (threads > 1) return Aio::kThreads;
    return direct ? Aio::kUring : Aio::kInline;
  }

  struct Options {
    std::string path;
    bool read_only = false;              // `hostdev <PATH`
    bool direct = false;                 // `dio enable`
    uint32_t threads = kDefaultThreads;  // 1..32
    uint16_t queues = 1;                 // 1..16
    std::string serial;                  // GET_ID; at most 20 bytes
    // threads 1: one worker thread instead of inline execution (benchmarks; see the file header).
    bool single_worker = false;
    Aio aio = Aio::kDefault;  // `aio inline|threads|io_uring`
    // io_uring: the event loop's busy-poll window after the last request started or finished
    // (`poll USEC`, event::EventLoop::add_poller); 0 = off.
    uint32_t poll_us = kDefaultPollUs;
    Lock lock = Lock::kOn;  // `lock on|warn|off`: refuse, warn about, or ignore a locked image
  };

  // Opens the backing file (error names it), sizes it, starts the worker threads.
  static Result<std::shared_ptr<VirtioBlk>> open(const Options& opts);
  // Takes the image's lock (exclusive read-write, shared read-only) as `opts.lock` says.
  static Status lock_image(int fd, const Options& opts);
  ~VirtioBlk() override;
  VirtioBlk(const VirtioBlk&) = delete;
  VirtioBlk& operator=(const VirtioBlk&) = delete;

  uint32_t device_type() const override;
  uint64_t device_features() const override;
  std::span<const uint16_t> queue_max_sizes() const override {
    return {queue_sizes_.data(), queue_sizes_.size()};
  }
  uint32_t config_size() const override { return sizeof(blk::Config); }
  void read_config(uint32_t offset, std::span<uint8_t> data) const override;
  Status activate(virtio::ActivationContext& ctx) override;
  void reset() override;
  void process_queue(uint16_t index) override;

  uint64_t capacity_sectors() const { return capacity_; }
  bool read_only() const { return opts_.read_only; }
  bool direct() const { return direct_; }  // O_DIRECT in effect
  uint32_t worker_threads() const { return static_cast<uint32_t>(workers_.size()); }
  Aio aio() const { return aio_; }  // the engine in effect (io_uring may have fallen back)
  static const char* aio_name(Aio a);
  // io_uring engine: an eventfd that becomes readable when completions are ready (-1 for the
  // other engines); the owner's event loop then calls on_completion().
  int completion_fd() const;
  void on_completion();
  // io_uring's busy poll: runs each queue through `notify` (the transport, as a notification
  // would) and reaps completions without waiting for their eventfd. True if a request started
  // or finished since the last call. Only with io_uring (other engines: false).
  bool poll(const std::function<void(uint16_t)>& notify);
  uint32_t poll_us() const { return opts_.poll_us; }
  // One line for dryrun: path, size, mode, threads, queues.
  std::string describe() const;
  // Waits until no request is queued or in progress (tests, benchmarks).
  void wait_idle();

 private:
  struct Work {
    uint16_t queue;
    uint64_t seq;
    virtio::DescriptorChain chain;
    uint32_t used_len = 0;
  };
  // Per executing thread: iovec array and (O_DIRECT) bounce buffer.
  struct Scratch {
    std::vector<iovec> iov;
    std::unique_ptr<uint8_t, void (*)(void*)> bounce{nullptr, nullptr};
  };

  // io_uring engine state (virtio_blk_uring.cpp); liburing stays out of this header.
  struct UringState;
  struct UringDeleter {
    void operator()(UringState* u) const;
  };

  VirtioBlk(UniqueFd fd, Options opts, uint64_t capacity, bool direct);
  void worker_main(uint32_t index);

  // io_uring engine (virtio_blk_uring.cpp). All under uring_mu_.
  Status uring_open();
  void uring_process(uint16_t index);
  // Starts IN/OUT/FLUSH in the ring (or, `try_now`, completes a small one at once with a
  // non-blocking call); false if the request must run synchronously through execute() instead.
  bool uring_start(uint16_t queue, virtio::DescriptorChain& chain, bool try_now);
  // Submits, reaps and completes; `wait_all` blocks until nothing is in flight. With `deliver`
  // false (destruction) completions are dropped instead of going to the used rings.
  void uring_run_locked(bool wait_all, bool deliver = true);
  bool uring_finish(uint32_t slot, int res);  // true once the request is complete
  void complete(std::span<Work> works);

  // Request execution (virtio_blk_io.cpp). Returns the used length (§2.7.8).
  uint32_t execute(memory::GuestMemory& mem, const virtio::DescriptorChain& c, uint64_t seq,
                   Scratch& s);
  uint8_t do_read(memory::GuestMemory& mem, const virtio::DescriptorChain& c, uint64_t sector,
                  uint64_t len, Scratch& s, uint64_t& written);
  uint8_t do_write(memory::GuestMemory& mem, const virtio::DescriptorChain& c, uint64_t sector,
                   uint64_t len, Scratch& s);
  uint8_t do_flush(uint64_t seq);
  uint8_t do_discard_zeroes(memory::GuestMemory& mem, const virtio::DescriptorChain& c,
                            uint32_t type, Scratch& s);
  uint8_t write_zero_bytes(uint64_t off, uint64_t len);
  bool range_ok(uint64_t sector, uint64_t sectors) const;

  // Ordering for FLUSH: sequence numbers of popped requests whose host I/O is not done.
  void io_begin(uint64_t seq);
  void io_done(uint64_t seq);

  UniqueFd fd_;
  const Options opts_;
  const uint64_t capacity_;  // sectors
  const bool direct_;
  std::vector<uint16_t> queue_sizes_;

  // Activation state; written by activate()/reset() while no worker holds work.
  memory::GuestMemory* mem_ = nullptr;
  virtio::Queue* queues_ = nullptr;
  size_t num_queues_ = 0;
  virtio::VirtioInterrupt* irq_ = nullptr;

  // One lock per virtqueue: pop (process_queue) and add_used (workers) never overlap.
  std::unique_ptr<std::mutex[]> qmu_;
  std::vector<uint32_t> outstanding_;  // per queue, popped and not completed (under mu_)

  std::mutex mu_;  // pending_, busy_, stop_, seq_, outstanding_
  std::condition_variable work_cv_;
  std::condition_variable idle_cv_;
  std::deque<Work> pending_;
  uint32_t busy_ = 0;
  bool stop_ = false;
  uint64_t seq_ = 0;
  Scratch inline_scratch_;

  std::mutex order_mu_;
  std::condition_variable order_cv_;
  std::set<uint64_t> in_io_;

  std::vector<std::thread> workers_;

  Aio aio_ = Aio::kInline;
  std::mutex uring_mu_;  // the ring, its slots, outstanding_ and the queues (io_uring engine)
  std::unique_ptr<UringState, UringDeleter> uring_;
};

}  // namespace qvm::vdev
