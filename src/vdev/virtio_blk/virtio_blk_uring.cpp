// virtio-blk io_uring engine (`aio io_uring`): IN, OUT and FLUSH requests (virtio 1.2 §5.2.6)
// become io_uring SQEs (readv, writev, fsync with IORING_FSYNC_DATASYNC); their completions are
// reaped when the ring's registered eventfd fires (the machine's event loop calls
// on_completion()) and, opportunistically, right after each submission, so a request the kernel
// finished inline (page-cache hit) completes without an extra wake-up. Then the used ring is
// updated and the interrupt raised (§2.7.7, needs_notification()).
//
// Only well-formed requests take this path: header readable, data a multiple of 512 bytes inside
// the disk, guest buffers resolved through GuestMemory (ChainReader/ChainWriter::iovecs) into at
// most IOV_MAX iovecs, aligned when O_DIRECT is on, a writable disk for OUT. Anything else
// (malformed, GET_ID, DISCARD, WRITE_ZEROES, bounce-buffer O_DIRECT) runs synchronously through
// execute(), which checks, logs and fails the request exactly as the other engines do.
//
// FLUSH carries IOSQE_IO_DRAIN: it starts only after every request submitted before it has
// finished, then calls fdatasync (§5.2.6.1; the same ordering the worker engine gives). A short
// transfer is resubmitted for the rest (at most kMaxResubmits times); end of file, an error or a
// transfer without progress fails the request with VIRTIO_BLK_S_IOERR. Per queue at most `size`
// requests are outstanding, and the ring has room for all of them.
#include <liburing.h>
#include <limits.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <cstring>

#include "base/log.hpp"
#include "vdev/virtio_blk/virtio_blk.hpp"
#include "virtio/guest_error.hpp"
#include "virtio/queue/chain.hpp"

namespace qvm::vdev {
namespace {

constexpr uint32_t kMaxResubmits = 1024;
constexpr size_t kDirectAlign = 512;

bool iov_aligned(const std::vector<iovec>& iov) {
  for (const auto& v : iov)
    // SAFETY: the pointer is only inspected as an integer, never dereferenced here.
    if ((reinterpret_cast<uintptr_t>(v.iov_base) | v.iov_len) % kDirectAlign != 0) return false;
  return true;
}

// Lone small requests (nothing in flight) first try a non-blocking preadv2/pwritev2.
constexpr uint64_t kNowaitMax = 64 * 1024;

}  // namespace

struct VirtioBlk::UringState {
  uint64_t progress = 0;  // requests taken from the rings plus completions reaped (poll())
  struct Slot {
    virtio::DescriptorChain chain;
    std::vector<iovec> iov;  // what is left to transfer starts at iov[first]
    size_t first = 0;
    uint64_t off = 0;      // file offset of the next byte
    uint64_t left = 0;     // bytes still to transfer
    uint64_t done = 0;     // bytes transferred
    uint64_t data_in = 0;  // device-writable bytes before the status byte
    uint32_t resubmits = 0;
    uint16_t queue = 0;
    uint32_t type = 0;
  };

  // Drops the first `n` transferred bytes from the slot's iovecs and position.
  static void consume(Slot& s, uint64_t n) {
    if (n > s.left) n = s.left;  // never trust a count past the request
    s.done += n;
    s.off += n;
    s.left -= n;
    while (n > 0 && s.first < s.iov.size()) {
      iovec& v = s.iov[s.first];
      const uint64_t k = n < v.iov_len ? n : v.iov_len;
      v.iov_base = static_cast<uint8_t*>(v.iov_base) + k;
      v.iov_len -= k;
      n -= k;
      if (v.iov_len == 0) ++s.first;
    }
  }

  io_uring ring{};
  bool ring_ok = false;
  bool nowait_read = true;  // RWF_NOWAIT worth trying (cleared on EOPNOTSUPP)
  bool nowait_write = true;
  UniqueFd efd;
  std::vector<Slot> slots;  // sized once: chains are referenced by their slot
  std::vector<uint32_t> free;
  uint32_t inflight = 0;
  uint32_t touched = 0;  // queues with new used entries since the last notification pass

  ~UringState() {
    if (ring_ok) io_uring_queue_exit(&ring);
  }
};

void VirtioBlk::UringDeleter::operator()(UringState* u) const {
  delete u;
}

Status VirtioBlk::uring_open() {
  auto u = std::unique_ptr<UringState, UringDeleter>(new UringState);
  const uint32_t slots = uint32_t{kQueueSize} * opts_.queues;  // ≤ 4096
  io_uring_params p{};
  p.flags = IORING_SETUP_CQSIZE;
  p.cq_entries = std::bit_ceil(slots) * 2;
  int rc = io_uring_queue_init_params(std::bit_ceil(slots), &u->ring, &p);
  if (rc < 0) return Error::from_errno("io_uring_queue_init", -rc);
  u->ring_ok = true;
  u->efd = UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!u->efd) return Error::from_errno("eventfd", errno);
  rc = io_uring_register_eventfd(&u->ring, u->efd.get());
  if (rc < 0) return Error::from_errno("io_uring_register_eventfd", -rc);
  u->slots.resize(slots);
  u->free.reserve(slots);
  for (uint32_t i = slots; i > 0; --i) u->free.push_back(i - 1);
  uring_ = std::move(u);
  return {};
}

int VirtioBlk::completion_fd() const {
  return uring_ ? uring_->efd.get() : -1;
}

void VirtioBlk::on_completion() {
  if (!uring_) return;
  uint64_t n = 0;
  ssize_t r = ::read(uring_->efd.get(), &n, sizeof n);  // drain; one pass reaps everything
  (void)r;
  std::lock_guard lk(uring_mu_);
  if (uring_->inflight > 0) uring_run_locked(false);
}

bool VirtioBlk::poll(const std::function<void(uint16_t)>& notify) {
  if (!uring_) return false;
  uint64_t before = 0;
  {
    std::lock_guard lk(uring_mu_);
    before = uring_->progress;
  }
  for (uint16_t i = 0; i < queue_sizes_.size(); ++i) notify(i);
  std::lock_guard lk(uring_mu_);
  UringState& u = *uring_;
  if (u.inflight > 0 && io_uring_cq_ready(&u.ring) > 0) uring_run_locked(false);
  return u.progress != before;
}

void VirtioBlk::uring_process(uint16_t index) {
  std::lock_guard lk(uring_mu_);
  UringState& u = *uring_;
  virtio::Queue& q = queues_[index];
  const uint32_t room = q.size() > outstanding_[index] ? q.size() - outstanding_[index] : 0;
  for (uint32_t n = 0; n < room && !u.free.empty(); ++n) {
    auto chain = q.next(*mem_);  // completes malformed chains itself
    if (!chain) break;
    ++u.progress;
    // Only a lone request tries the synchronous non-blocking path (see uring_start).
    if (uring_start(index, *chain, n == 0 && u.inflight == 0)) continue;
    const uint32_t len = execute(*mem_, *chain, 0, inline_scratch_);
    if (!q.add_used(*mem_, chain->head, len)) break;
  }
  u.touched |= 1u << index;
  // Completions the kernel posts during submission are reaped here without an eventfd wake-up.
  (void)io_uring_cq_eventfd_toggle(&u.ring, false);
  uring_run_locked(false);
  (void)io_uring_cq_eventfd_toggle(&u.ring, true);
  if (u.inflight > 0 && io_uring_cq_ready(&u.ring) > 0) uring_run_locked(false);
}

bool VirtioBlk::uring_start(uint16_t queue, virtio::DescriptorChain& chain, bool try_now) {
  UringState& u = *uring_;
  if (chain.writable_bytes == 0) return false;
  const uint64_t data_in = chain.writable_bytes - 1;
  virtio::ChainReader r(*mem_, chain);
  auto hdr = r.read_obj<blk::ReqHeader>();
  if (!hdr) return false;
  const uint64_t data_out = chain.readable_bytes - sizeof(blk::ReqHeader);
  const uint32_t slot_id = u.free.back();
  UringState::Slot& s = u.slots[slot_id];
  s.iov.clear();
  s.first = 0;
  s.done = 0;
  s.resubmits = 0;
  s.queue = queue;
  s.type = hdr->type;
  s.data_in = data_in;
  if (hdr->type == blk::kTypeIn || hdr->type == blk::kTypeOut) {
    const bool in = hdr->type == blk::kTypeIn;
    const uint64_t len = in ? data_in : data_out;
    if (len == 0 || len % blk::kSectorSize != 0 || !range_ok(hdr->sector, len / blk::kSectorSize))
      return false;
    if (!in && opts_.read_only) return false;
    Result<uint64_t> got =
        in ? virtio::ChainWriter(*mem_, chain).iovecs(len, s.iov) : r.iovecs(len, s.iov);
    if (!got || *got != len || s.iov.size() > static_cast<size_t>(IOV_MAX)) return false;
    if (direct_ && !iov_aligned(s.iov)) return false;  // the bounce buffer is synchronous
    s.off = hdr->sector * blk::kSectorSize;
    s.left = len;
    bool& nowait = in ? u.nowait_read : u.nowait_write;
    if (try_now && !direct_ && len <= kNowaitMax) {
      // Latency path (QD1): a lone small buffered request is done at once, without the ring's
      // round trip (and, where the file system punts to io_uring's workers, a thread hop):
      // non-blocking where the file supports RWF_NOWAIT (ext4 reads), else a plain call as the
      // inline engine makes (tmpfs; ext4 buffered writes). What is left continues in the ring.
      const auto cnt = static_cast<int>(s.iov.size());
      const auto off = static_cast<off_t>(s.off);
      auto call = [&](int flags) {
        return in ? ::preadv2(fd_.get(), s.iov.data(), cnt, off, flags)
                  : ::pwritev2(fd_.get(), s.iov.data(), cnt, off, flags);
      };
      ssize_t n = call(nowait ? RWF_NOWAIT : 0);
      if (n < 0 && errno == EOPNOTSUPP && nowait) {
        nowait = false;
        n = call(0);
      }
      if (n > 0) UringState::consume(s, static_cast<uint64_t>(n));
      if (s.left == 0) {
        virtio::ChainWriter w(*mem_, chain);
        w.advance(data_in);
        const uint32_t used =
            w.write_obj(blk::kStatusOk) ? static_cast<uint32_t>(in ? len + 1 : 1) : 0;
        (void)queues_[queue].add_used(*mem_, chain.head, used);
        u.touched |= 1u << queue;
        return true;
      }
    }
  } else if (hdr->type != blk::kTypeFlush) {
    return false;
  } else {
    s.left = 0;
  }
  io_uring_sqe* sqe = io_uring_get_sqe(&u.ring);
  if (!sqe) {
    (void)io_uring_submit(&u.ring);
    sqe = io_uring_get_sqe(&u.ring);
    if (!sqe) return false;
  }
  s.chain = std::move(chain);
  u.free.pop_back();
  ++u.inflight;
  ++outstanding_[queue];
  if (s.type == blk::kTypeFlush) {
    io_uring_prep_fsync(sqe, fd_.get(), IORING_FSYNC_DATASYNC);
    sqe->flags |= IOSQE_IO_DRAIN;
  } else if (s.type == blk::kTypeIn) {
    io_uring_prep_readv(sqe, fd_.get(), s.iov.data() + s.first,
                        static_cast<unsigned>(s.iov.size() - s.first), s.off);
  } else {
    io_uring_prep_writev(sqe, fd_.get(), s.iov.data() + s.first,
                         static_cast<unsigned>(s.iov.size() - s.first), s.off);
  }
  io_uring_sqe_set_data64(sqe, slot_id);
  return true;
}

bool VirtioBlk::uring_finish(uint32_t slot_id, int res) {
  UringState& u = *uring_;
  UringState::Slot& s = u.slots[slot_id];
  const bool rw = s.type != blk::kTypeFlush;
  bool retry = res == -EAGAIN || res == -EINTR;
  if (rw && res > 0) {
    UringState::consume(s, static_cast<uint64_t>(res));
    retry = s.left > 0;
  }
  if (retry && s.resubmits < kMaxResubmits) {
    if (io_uring_sqe* sqe = io_uring_get_sqe(&u.ring)) {
      ++s.resubmits;
      const auto cnt = static_cast<unsigned>(s.iov.size() - s.first);
      if (!rw) {
        io_uring_prep_fsync(sqe, fd_.get(), IORING_FSYNC_DATASYNC);
      } else if (s.type == blk::kTypeIn) {
        io_uring_prep_readv(sqe, fd_.get(), s.iov.data() + s.first, cnt, s.off);
      } else {
        io_uring_prep_writev(sqe, fd_.get(), s.iov.data() + s.first, cnt, s.off);
      }
      io_uring_sqe_set_data64(sqe, slot_id);
      return false;
    }
  }
  // Rate-limited either way: the guest decides how often a failing host file is asked.
  if (res < 0) {
    virtio::log_guest_error("virtio-blk: %s %s: %s", opts_.path.c_str(),
                            !rw ? "fdatasync" : (s.type == blk::kTypeIn ? "readv" : "writev"),
                            std::strerror(-res));
  } else if (rw && s.left > 0) {
    virtio::log_guest_error("virtio-blk: %s stopped at %llu (end of file?)",
                            s.type == blk::kTypeIn ? "readv" : "writev",
                            static_cast<unsigned long long>(s.off));
  }
  return true;
}

void VirtioBlk::uring_run_locked(bool wait_all, bool deliver) {
  UringState& u = *uring_;
  for (uint32_t pass = 0;; ++pass) {
    int rc = io_uring_submit(&u.ring);
    if (rc < 0 && rc != -EAGAIN && rc != -EBUSY && rc != -EINTR)
      log_error("virtio-blk: io_uring_submit: %s", std::strerror(-rc));
    io_uring_cqe* cqe = nullptr;
    unsigned handled = 0;
    while (io_uring_peek_cqe(&u.ring, &cqe) == 0 && cqe) {
      const uint64_t id = io_uring_cqe_get_data64(cqe);
      const int res = cqe->res;
      io_uring_cqe_seen(&u.ring, cqe);
      ++handled;
      ++u.progress;
      if (id >= u.slots.size()) continue;  // not ours; cannot happen
      const auto slot_id = static_cast<uint32_t>(id);
      if (!uring_finish(slot_id, res)) continue;  // resubmitted for the rest
      UringState::Slot& s = u.slots[slot_id];
      --u.inflight;
      --outstanding_[s.queue];
      u.free.push_back(slot_id);
      if (!deliver) continue;
      const bool ok = res >= 0 && (s.type == blk::kTypeFlush || s.left == 0);
      virtio::ChainWriter w(*mem_, s.chain);
      w.advance(s.data_in);
      const uint8_t status = ok ? blk::kStatusOk : blk::kStatusIoErr;
      const uint64_t written = s.type == blk::kTypeIn ? s.done : 0;
      const uint32_t len = w.write_obj(status) ? static_cast<uint32_t>(written + 1) : 0;
      (void)queues_[s.queue].add_used(*mem_, s.chain.head, len);
      u.touched |= 1u << s.queue;
    }
    if (u.inflight == 0) break;
    if (io_uring_sq_ready(&u.ring) > 0 && pass < kMaxResubmits) continue;  // resubmissions
    if (!wait_all) break;
    if (handled == 0) {
      rc = io_uring_wait_cqe(&u.ring, &cqe);
      if (rc < 0 && rc != -EINTR && rc != -EAGAIN) {
        log_error("virtio-blk: io_uring_wait_cqe: %s", std::strerror(-rc));
        break;
      }
    }
  }
  if (!deliver) {
    u.touched = 0;
    return;
  }
  for (uint32_t t = u.touched; t != 0; t &= t - 1) {
    const auto qi = static_cast<uint16_t>(std::countr_zero(t));
    if (qi < num_queues_ && queues_[qi].needs_notification(*mem_)) irq_->signal_used(qi);
  }
  u.touched = 0;
}

}  // namespace qvm::vdev
