// virtio-blk (virtio 1.2 §5.2): opening the backing file, configuration space, activation and
// the request pipeline (inline or worker threads). Request execution is in virtio_blk_io.cpp.
#include "vdev/virtio_blk/virtio_blk.hpp"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/uio.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <system_error>

#include "base/log.hpp"
#include "virtio/guest_error.hpp"
#include "virtio/virtio_defs.hpp"

namespace qvm::vdev {

using virtio::feature_bit;

// One image, one writer (as QEMU and Cloud Hypervisor do): an open file description lock on the
// whole file, exclusive for read-write, shared for read-only (`hostdev <`). OFD locks belong to
// the open file, not the process, and go with its last fd; they conflict with other processes'
// OFD and POSIX record locks (fcntl(2)).
Status VirtioBlk::lock_image(int fd, const Options& opts) {
  if (opts.lock == Lock::kOff) return {};
  struct flock fl {};
  fl.l_type = opts.read_only ? F_RDLCK : F_WRLCK;
  fl.l_whence = SEEK_SET;
  if (::fcntl(fd, F_OFD_SETLK, &fl) == 0) return {};
  const int err = errno;
  if (err != EAGAIN && err != EACCES) {
    log_warn(
        "virtio-blk: %s: cannot lock the image (%s); it is not protected against a second "
        "user",
        opts.path.c_str(), std::strerror(err));
    return {};
  }
  const std::string what = "virtio-blk: hostdev '" + opts.path +
                           "' is in use: another process holds a " +
                           (opts.read_only ? "write" : "read or write") + " lock on it";
  if (opts.lock == Lock::kWarn) {
    log_warn("%s; opened anyway (`lock warn`)", what.c_str());
    return {};
  }
  return make_error(what + " (`lock warn` or `lock off` to share it at your own risk)");
}

Result<std::shared_ptr<VirtioBlk>> VirtioBlk::open(const Options& opts) {
  if (opts.path.empty()) return make_error("virtio-blk: no hostdev given");
  if (opts.threads < 1 || opts.threads > kMaxThreads)
    return make_error(
        strprintf("virtio-blk: threads %u out of range 1..%u", opts.threads, kMaxThreads));
  if (opts.queues < 1 || opts.queues > kMaxQueues)
    return make_error(strprintf("virtio-blk: queues %u out of range 1..%u",
                                static_cast<unsigned>(opts.queues),
                                static_cast<unsigned>(kMaxQueues)));
  if (opts.serial.size() > blk::kIdBytes)
    return make_error(strprintf("virtio-blk: serial '%s' is longer than %u bytes",
                                opts.serial.c_str(), blk::kIdBytes));

  // O_NONBLOCK: a FIFO named as a disk must not hang the open; it is refused below, and the flag
  // is cleared again for the image (it means nothing for regular files and block devices).
  const int base_flags = (opts.read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_NONBLOCK;
  bool direct = opts.direct;
  UniqueFd fd(::open(opts.path.c_str(), base_flags | (direct ? O_DIRECT : 0)));
  if (!fd && direct && errno == EINVAL) {
    // tmpfs and some FUSE file systems refuse O_DIRECT at open time.
    log_warn("virtio-blk: %s: the file system refuses O_DIRECT; using buffered I/O",
             opts.path.c_str());
    direct = false;
    fd = UniqueFd(::open(opts.path.c_str(), base_flags));
  }
  if (!fd) return Error::from_errno("virtio-blk: cannot open hostdev '" + opts.path + "'", errno);

  struct stat st {};
  if (::fstat(fd.get(), &st) != 0)
    return Error::from_errno("virtio-blk: fstat '" + opts.path + "'", errno);
  uint64_t bytes = 0;
  if (S_ISREG(st.st_mode)) {
    bytes = static_cast<uint64_t>(st.st_size);
  } else if (S_ISBLK(st.st_mode)) {
    if (::ioctl(fd.get(), BLKGETSIZE64, &bytes) != 0)
      return Error::from_errno("virtio-blk: BLKGETSIZE64 '" + opts.path + "'", errno);
  } else {
    return make_error("virtio-blk: hostdev '" + opts.path +
                      "' is neither a regular file nor a block device");
  }
  if (int fl = ::fcntl(fd.get(), F_GETFL); fl >= 0)
    (void)::fcntl(fd.get(), F_SETFL, fl & ~O_NONBLOCK);
  QVM_TRY(lock_image(fd.get(), opts));
  if (bytes % blk::kSectorSize != 0)
    log_warn(
        "virtio-blk: %s: size %llu is not a multiple of 512; the last %llu bytes are not "
        "visible to the guest",
        opts.path.c_str(), static_cast<unsigned long long>(bytes),
        static_cast<unsigned long long>(bytes % blk::kSectorSize));

  std::shared_ptr<VirtioBlk> dev(
      new VirtioBlk(std::move(fd), opts, bytes / blk::kSectorSize, direct));
  Aio aio = opts.aio;
  if (aio == Aio::kDefault)
    aio = opts.single_worker ? Aio::kThreads : default_aio(opts.threads, direct);
  if (aio != Aio::kThreads && opts.threads > 1)
    return make_error(strprintf("virtio-blk: threads %u needs aio threads (aio is %s)",
                                opts.threads, aio_name(aio)));
  if (aio == Aio::kUring) {
    if (auto s = dev->uring_open(); !s) {
      log_warn("virtio-blk: %s: io_uring unavailable (%s); executing requests inline",
               opts.path.c_str(), s.error().message.c_str());
      aio = Aio::kInline;
    }
  }
  dev->aio_ = aio;
  if (aio == Aio::kThreads) {
    try {
      for (uint32_t i = 0; i < opts.threads; ++i)
        dev->workers_.emplace_back([d = dev.get(), i] { d->worker_main(i); });
    } catch (const std::system_error& e) {
      return make_error(std::string("virtio-blk: cannot start worker threads: ") + e.what());
    }
  }
  return dev;
}

VirtioBlk::VirtioBlk(UniqueFd fd, Options opts, uint64_t capacity, bool direct)
    : fd_(std::move(fd)),
      opts_(std::move(opts)),
      capacity_(capacity),
      direct_(direct),
      queue_sizes_(opts_.queues, kQueueSize),
      qmu_(new std::mutex[opts_.queues]),
      outstanding_(opts_.queues, 0) {}

VirtioBlk::~VirtioBlk() {
  if (uring_) {
    // Host I/O into guest memory must end before the memory can go; the queues may be gone.
    std::lock_guard lk(uring_mu_);
    uring_run_locked(true, false);
  }
  {
    std::lock_guard lk(mu_);
    stop_ = true;
    pending_.clear();
  }
  work_cv_.notify_all();
  for (auto& t : workers_) t.join();
}

uint32_t VirtioBlk::device_type() const {
  return virtio::kDeviceIdBlock;
}

uint64_t VirtioBlk::device_features() const {
  uint64_t f = feature_bit(blk::kFeatureSegMax) | feature_bit(blk::kFeatureBlkSize) |
               feature_bit(blk::kFeatureFlush);
  if (opts_.read_only)
    f |= feature_bit(blk::kFeatureRo);
  else
    f |= feature_bit(blk::kFeatureDiscard) | feature_bit(blk::kFeatureWriteZeroes);
  if (opts_.queues > 1) f |= feature_bit(blk::kFeatureMq);
  return f;
}

void VirtioBlk::read_config(uint32_t offset, std::span<uint8_t> data) const {
  // §5.2.4; fields of features not offered read as 0.
  blk::Config c{};
  c.capacity = capacity_;
  c.seg_max = kQueueSize - 2;  // header and status take one descriptor each (§5.2.4)
  c.blk_size = blk::kSectorSize;
  c.num_queues = opts_.queues;
  if (!opts_.read_only) {
    c.max_discard_sectors = kMaxDiscardSectors;
    c.max_discard_seg = kMaxDiscardSeg;
    c.discard_sector_alignment = kDiscardAlignment;
    c.max_write_zeroes_sectors = kMaxDiscardSectors;
    c.max_write_zeroes_seg = kMaxDiscardSeg;
    c.write_zeroes_may_unmap = 1;
  }
  uint8_t raw[sizeof c];
  std::memcpy(raw, &c, sizeof c);
  for (size_t i = 0; i < data.size(); ++i) {
    const size_t o = size_t{offset} + i;
    data[i] = o < sizeof raw ? raw[o] : 0;
  }
}

Status VirtioBlk::activate(virtio::ActivationContext& ctx) {
  if (ctx.queues.size() != opts_.queues)
    return make_error(strprintf("virtio-blk: %zu queues, expected %u", ctx.queues.size(),
                                static_cast<unsigned>(opts_.queues)));
  std::lock_guard lk(mu_);
  mem_ = &ctx.mem;
  queues_ = ctx.queues.data();
  num_queues_ = ctx.queues.size();
  irq_ = &ctx.interrupt;
  std::fill(outstanding_.begin(), outstanding_.end(), 0u);
  return {};
}

void VirtioBlk::reset() {
  std::unique_lock ulk(uring_mu_);
  // io_uring: requests in flight finish and complete while the queues are still valid.
  if (uring_ && mem_) uring_run_locked(true);
  std::unique_lock lk(mu_);
  // Queued requests are dropped (the driver reset the device; nobody waits for them).
  for (const auto& w : pending_) io_done(w.seq);
  pending_.clear();
  // Requests in progress finish (host I/O cannot be cancelled) and complete while the queues
  // are still valid: the transport resets them only after this returns.
  idle_cv_.wait(lk, [this] { return busy_ == 0; });
  mem_ = nullptr;
  queues_ = nullptr;
  num_queues_ = 0;
  irq_ = nullptr;
  std::fill(outstanding_.begin(), outstanding_.end(), 0u);
}

void VirtioBlk::wait_idle() {
  if (uring_) {
    std::lock_guard ulk(uring_mu_);
    if (mem_) uring_run_locked(true);
  }
  std::unique_lock lk(mu_);
  idle_cv_.wait(lk, [this] { return busy_ == 0 && pending_.empty(); });
}

void VirtioBlk::process_queue(uint16_t index) {
  if (!mem_ || index >= num_queues_) return;
  if (uring_) {
    uring_process(index);
    return;
  }
  virtio::Queue& q = queues_[index];
  if (workers_.empty()) {
    // Inline: execute each request on this thread, one interrupt for the whole pass.
    for (uint32_t n = 0; n < q.size(); ++n) {
      auto chain = q.next(*mem_);
      if (!chain) break;
      const uint32_t len = execute(*mem_, *chain, 0, inline_scratch_);
      if (!q.add_used(*mem_, chain->head, len)) break;
    }
    if (q.needs_notification(*mem_)) irq_->signal_used(index);
    return;
  }

  std::vector<Work> popped;
  {
    std::lock_guard qlk(qmu_[index]);
    uint32_t room;
    {
      std::lock_guard lk(mu_);
      room = q.size() > outstanding_[index] ? q.size() - outstanding_[index] : 0;
    }
    for (uint32_t n = 0; n < room; ++n) {
      auto chain = q.next(*mem_);
      if (!chain) break;
      popped.push_back(Work{index, 0, std::move(*chain)});
    }
    // next() completes malformed chains itself.
    if (q.needs_notification(*mem_)) irq_->signal_used(index);
  }
  if (popped.empty()) return;
  {
    std::lock_guard lk(mu_);
    outstanding_[index] += static_cast<uint32_t>(popped.size());
    for (auto& w : popped) {
      w.seq = ++seq_;
      io_begin(w.seq);
      pending_.push_back(std::move(w));
    }
  }
  work_cv_.notify_all();
}

void VirtioBlk::worker_main(uint32_t /*index*/) {
  Scratch scratch;
  std::vector<Work> batch;
  const auto nthreads = static_cast<uint32_t>(opts_.threads);
  for (;;) {
    batch.clear();
    {
      std::unique_lock lk(mu_);
      work_cv_.wait(lk, [this] { return stop_ || !pending_.empty(); });
      if (stop_) return;
      // A fair share of what is queued (at least one, at most 16), so completions are batched
      // under load without one slow request delaying many others.
      size_t take = std::clamp<size_t>(pending_.size() / nthreads, 1, 16);
      for (size_t i = 0; i < take && !pending_.empty(); ++i) {
        batch.push_back(std::move(pending_.front()));
        pending_.pop_front();
      }
      ++busy_;
    }
    for (auto& w : batch) {
      w.used_len = execute(*mem_, w.chain, w.seq, scratch);
      io_done(w.seq);
    }
    complete(batch);
    {
      std::lock_guard lk(mu_);
      for (const auto& w : batch) --outstanding_[w.queue];
      --busy_;
    }
    idle_cv_.notify_all();
  }
}

void VirtioBlk::complete(std::span<Work> works) {
  // Group by queue; one needs_notification() per queue touched.
  for (size_t i = 0; i < works.size();) {
    const uint16_t qi = works[i].queue;
    std::lock_guard qlk(qmu_[qi]);
    virtio::Queue& q = queues_[qi];
    size_t j = i;
    for (; j < works.size() && works[j].queue == qi; ++j)
      (void)q.add_used(*mem_, works[j].chain.head, works[j].used_len);
    if (q.needs_notification(*mem_)) irq_->signal_used(qi);
    i = j;
  }
}

void VirtioBlk::io_begin(uint64_t seq) {
  std::lock_guard lk(order_mu_);
  in_io_.insert(seq);
}

void VirtioBlk::io_done(uint64_t seq) {
  if (seq == 0) return;
  {
    std::lock_guard lk(order_mu_);
    in_io_.erase(seq);
  }
  order_cv_.notify_all();
}

const char* VirtioBlk::aio_name(Aio a) {
  switch (a) {
    case Aio::kDefault:
      return "default";
    case Aio::kInline:
      return "inline";
    case Aio::kThreads:
      return "threads";
    case Aio::kUring:
      return "io_uring";
  }
  return "?";
}

std::string VirtioBlk::describe() const {
  return strprintf("%s%s, %llu sectors, %s, aio %s, threads %zu, queues %u",
                   opts_.read_only ? "<" : "", opts_.path.c_str(),
                   static_cast<unsigned long long>(capacity_), direct_ ? "O_DIRECT" : "buffered",
                   aio_name(aio_), workers_.size(), static_cast<unsigned>(opts_.queues));
}

}  // namespace qvm::vdev
