#include "virtio/queue/virtqueue.hpp"

#include <atomic>

#include "base/log.hpp"
#include "virtio/guest_error.hpp"
#include "virtio/virtio_defs.hpp"

namespace qvm::virtio {
namespace {

using ull = unsigned long long;

// Ring field offsets (virtio 1.2 §2.7.6 and §2.7.8).
constexpr uint64_t kAvailIdx = 2;
constexpr uint64_t kAvailRing = 4;
constexpr uint64_t kUsedFlags = 0;
constexpr uint64_t kUsedIdx = 2;
constexpr uint64_t kUsedRing = 4;

// True if any byte of [addr, addr+len) is read-only to the guest (ROM): a device must not write
// there on the guest's behalf.
bool touches_readonly(const memory::GuestMemory& mem, uint64_t addr, uint64_t len) {
  for (const auto& r : mem.regions())
    if (r.readonly && addr < r.end() && r.gpa < addr + len) return true;
  return false;
}

Error chain_error(uint16_t head, const char* what) {
  return make_error(strprintf("descriptor chain at head %u: %s", head, what));
}

}  // namespace

Queue::Queue(uint16_t max_size)
    : max_size_(max_size == 0 || max_size > kMaxSize ? kMaxSize : max_size), size_(max_size_) {}

void Queue::reset() {
  size_ = max_size_;
  desc_ = avail_ = used_ = 0;
  ready_ = event_idx_ = indirect_ = broken_ = no_notify_set_ = false;
  next_avail_ = next_used_ = signalled_used_ = failed_head_ = 0;
}

void Queue::set_ready(bool r) {
  ready_ = r;
  broken_ = no_notify_set_ = false;
  next_avail_ = next_used_ = signalled_used_ = 0;
}

Status Queue::validate(const memory::GuestMemory& mem) const {
  // virtio 1.2 §2.7: Queue Size is a power of 2 no larger than 32768 (and the device maximum).
  if (size_ == 0 || (size_ & (size_ - 1)) != 0 || size_ > max_size_)
    return make_error(strprintf("queue size %u is not a power of two in 1..%u", size_, max_size_));
  // virtio 1.2 §2.7, table "Virtqueue Part Alignment": 16, 2 and 4 bytes.
  if ((desc_ & 15) != 0 || (avail_ & 1) != 0 || (used_ & 3) != 0)
    return make_error("queue ring addresses are misaligned");
  const uint64_t n = size_;
  if (!mem.contains(desc_, 16 * n) || !mem.contains(avail_, 6 + 2 * n) ||
      !mem.contains(used_, 6 + 8 * n))
    return make_error(strprintf(
        "queue rings (desc 0x%llx, avail 0x%llx, used 0x%llx, size %u) are "
        "not in guest memory",
        static_cast<ull>(desc_), static_cast<ull>(avail_), static_cast<ull>(used_), size_));
  return {};
}

Error Queue::fail(bool ring_level, const Error& e) {
  if (ring_level) broken_ = true;
  return e;
}

Status Queue::walk(const memory::GuestMemory& mem, uint16_t head, DescriptorChain& out) const {
  out.head = head;
  uint64_t table = desc_;
  uint32_t table_len = size_;
  uint32_t budget = size_;  // §2.7.5.2: a chain is at most Queue Size descriptors long
  uint32_t steps = 0;
  bool in_indirect = false;
  bool seen_write = false;
  uint32_t idx = head;
  for (;;) {
    if (steps++ >= budget) return chain_error(head, "longer than the queue size (loop?)");
    auto d = mem.read_obj<VirtqDesc>(table + 16 * uint64_t{idx});
    if (!d) return chain_error(head, "descriptor not in guest memory");
    if (d->flags & kDescFlagIndirect) {
      // virtio 1.2 §2.7.5.3.1: INDIRECT needs the feature, never with NEXT, never nested; the
      // table is len/16 descriptors (the WRITE flag of this descriptor is ignored).
      if (!indirect_) return chain_error(head, "INDIRECT without VIRTIO_F_INDIRECT_DESC");
      if (in_indirect) return chain_error(head, "nested indirect table");
      if (d->flags & kDescFlagNext) return chain_error(head, "INDIRECT together with NEXT");
      if (d->len == 0 || d->len % 16 != 0 || d->len / 16 > kMaxIndirect)
        return chain_error(head, "indirect table length is not a multiple of 16 in range");
      if (!mem.contains(d->addr, d->len))
        return chain_error(head, "indirect table not in guest memory");
      table = d->addr;
      table_len = budget = d->len / 16;
      steps = 0;
      idx = 0;
      in_indirect = true;
      continue;
    }
    const bool write = (d->flags & kDescFlagWrite) != 0;
    // virtio 1.2 §2.7.4.2: device-writable descriptors come after all device-readable ones.
    if (!write && seen_write) return chain_error(head, "readable descriptor after a writable one");
    seen_write = seen_write || write;
    if (d->len != 0) {
      if (d->addr + d->len < d->addr) return chain_error(head, "buffer address wraps");
      if (!mem.contains(d->addr, d->len)) return chain_error(head, "buffer not in guest memory");
      if (write && touches_readonly(mem, d->addr, d->len))
        return chain_error(head, "device-writable buffer in read-only memory");
      uint64_t& total = write ? out.writable_bytes : out.readable_bytes;
      total += d->len;
      if (total > UINT32_MAX) return chain_error(head, "total length exceeds 4 GiB");
      (write ? out.writable : out.readable).push_back(GuestBuffer{d->addr, d->len});
    }
    if (!(d->flags & kDescFlagNext)) return {};
    idx = d->next;
    if (idx >= table_len) return chain_error(head, "next index out of range");
  }
}

Status Queue::write_used_flags(memory::GuestMemory& mem, bool no_notify) {
  // virtio 1.2 §2.7.8: used.flags is the device's; bit 0 is VIRTQ_USED_F_NO_NOTIFY.
  if (!mem.write_obj<uint16_t>(used_ + kUsedFlags, no_notify ? kUsedFlagNoNotify : 0))
    return fail(true, make_error("used ring not writable"));
  no_notify_set_ = no_notify;
  return {};
}

Result<std::optional<DescriptorChain>> Queue::pop(memory::GuestMemory& mem) {
  if (!ready_ || broken_ || size_ == 0) return std::optional<DescriptorChain>{};
  auto avail_idx = mem.read_obj<uint16_t>(avail_ + kAvailIdx);
  if (!avail_idx) return fail(true, make_error("avail ring not readable"));
  if (*avail_idx == next_avail_) {
    if (event_idx_) {
      // virtio 1.2 §2.7.10: tell the driver which avail index to notify for, then re-check so a
      // buffer added meanwhile without a notification is not missed.
      if (!mem.write_obj<uint16_t>(used_ + kUsedRing + 8 * uint64_t{size_}, next_avail_))
        return fail(true, make_error("used ring not writable"));
    } else if (no_notify_set_) {
      // §2.7.7: notifications back on, then the same re-check.
      QVM_TRY(write_used_flags(mem, false));
    } else {
      return std::optional<DescriptorChain>{};
    }
    std::atomic_thread_fence(std::memory_order_seq_cst);
    avail_idx = mem.read_obj<uint16_t>(avail_ + kAvailIdx);
    if (!avail_idx) return fail(true, make_error("avail ring not readable"));
    if (*avail_idx == next_avail_) return std::optional<DescriptorChain>{};
  }
  const uint16_t pending = static_cast<uint16_t>(*avail_idx - next_avail_);
  if (pending > size_)
    return fail(true, make_error(strprintf("avail index %u is %u entries ahead of %u (size %u)",
                                           *avail_idx, pending, next_avail_, size_)));
  // Busy from here until the ring is found empty: the driver need not notify (§2.7.7).
  if (suppress_ && !event_idx_ && !no_notify_set_) QVM_TRY(write_used_flags(mem, true));
  // Read the ring entry and the descriptors only after seeing the index (§2.7.13.3 barrier).
  std::atomic_thread_fence(std::memory_order_acquire);
  auto head = mem.read_obj<uint16_t>(avail_ + kAvailRing + 2 * (uint64_t{next_avail_} % size_));
  if (!head) return fail(true, make_error("avail ring not readable"));
  ++next_avail_;
  if (*head >= size_)
    return fail(true,
                make_error(strprintf("avail ring head %u out of range (size %u)", *head, size_)));
  DescriptorChain chain;
  if (auto s = walk(mem, *head, chain); !s) {
    failed_head_ = *head;
    return std::move(s).error();
  }
  return std::optional<DescriptorChain>(std::move(chain));
}

std::optional<DescriptorChain> Queue::next(memory::GuestMemory& mem) {
  for (uint32_t i = 0; i <= size_; ++i) {
    auto r = pop(mem);
    if (r.ok()) return std::move(*r);
    log_guest_error("virtio queue: %s", r.error().message.c_str());
    if (broken_) {
      log_guest_error("virtio queue: ring corrupt, processing stopped until reset");
      return std::nullopt;
    }
    (void)add_used(mem, failed_head_, 0);  // fail that request (§2.7.8: len 0)
  }
  return std::nullopt;
}

void Queue::undo_pop() {
  --next_avail_;
}

Status Queue::add_used(memory::GuestMemory& mem, uint16_t head, uint32_t written) {
  if (!ready_ || broken_) return make_error("queue is not ready");
  if (head >= size_) return make_error("used head out of range");
  const uint64_t slot = used_ + kUsedRing + 8 * (uint64_t{next_used_} % size_);
  if (!mem.write_obj(slot, VirtqUsedElem{head, written}))
    return fail(true, make_error("used ring not writable"));
  // virtio 1.2 §2.7.13.4 (device side): the entry is visible before the index that publishes it.
  std::atomic_thread_fence(std::memory_order_release);
  ++next_used_;
  if (!mem.write_obj<uint16_t>(used_ + kUsedIdx, next_used_))
    return fail(true, make_error("used ring not writable"));
  return {};
}

bool Queue::needs_notification(const memory::GuestMemory& mem) {
  if (!ready_) return false;
  // The used index write must be visible before reading the driver's suppression fields.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  const uint16_t old_used = signalled_used_;
  const uint16_t new_used = next_used_;
  if (old_used == new_used) return false;
  signalled_used_ = new_used;
  if (event_idx_) {
    // virtio 1.2 §2.7.10: used_event sits after the avail ring; notify when the new used
    // entries pass it (vring_need_event).
    auto ev = mem.read_obj<uint16_t>(avail_ + kAvailRing + 2 * uint64_t{size_});
    if (!ev) return true;
    return static_cast<uint16_t>(new_used - *ev - 1) < static_cast<uint16_t>(new_used - old_used);
  }
  // virtio 1.2 §2.7.7: VIRTQ_AVAIL_F_NO_INTERRUPT is a hint not to interrupt.
  auto flags = mem.read_obj<uint16_t>(avail_);
  if (!flags) return true;
  return (*flags & kAvailFlagNoInterrupt) == 0;
}

std::string Queue::describe(const memory::GuestMemory& mem) const {
  if (!ready_) return strprintf("size %u, not ready", size_);
  // The driver's fields (§2.7.6, §2.7.10): unreadable ones are shown as "?".
  auto field = [&mem](uint64_t gpa) {
    auto v = mem.read_obj<uint16_t>(gpa);
    return v ? std::to_string(*v) : std::string("?");
  };
  auto aflags = mem.read_obj<uint16_t>(avail_);
  auto avail = mem.read_obj<uint16_t>(avail_ + kAvailIdx);
  const auto pending = static_cast<uint16_t>(avail ? *avail - next_avail_ : 0);
  std::string s =
      strprintf("size %u avail %s next_avail %u (%u pending) used %u", size_,
                avail ? std::to_string(*avail).c_str() : "?", next_avail_, pending, next_used_);
  if (event_idx_) {
    s += " used_event " + field(avail_ + kAvailRing + 2 * uint64_t{size_});
    s += " avail_event " + field(used_ + kUsedRing + 8 * uint64_t{size_});
  } else {
    if (aflags && (*aflags & kAvailFlagNoInterrupt)) s += " NO_INTERRUPT";
    if (no_notify_set_) s += " NO_NOTIFY";
  }
  if (broken_) s += " BROKEN";
  return s;
}

}  // namespace qvm::virtio
