// The split virtqueue (virtio 1.2 §2.7), transport-free: the transport fills in the size and ring
// addresses the driver chose, the device pops descriptor chains and returns them through the used
// ring. Guest memory is passed per call and every access goes through GuestMemory's checks.
//
// Everything read from the rings is untrusted. pop() walks a chain at most `size` descriptors long
// (plus at most len/16 in one indirect table, no nested indirect), checks each buffer for address
// overflow and guest-memory containment, and enforces §2.7.4.2 (device-writable descriptors after
// device-readable ones). A malformed chain fails that request; ring-level corruption (avail index
// running more than `size` ahead, a head index out of range, rings outside guest memory) marks the
// queue broken: it stops processing and needs_reset() tells the transport to set
// DEVICE_NEEDS_RESET (§2.1.2). Nothing here asserts or loops without bound on guest data.
//
// Driver notifications are suppressed while the device is busy: with EVENT_IDX through avail_event,
// otherwise (opt-in per queue, set_notify_suppression) through used.flags VIRTQ_USED_F_NO_NOTIFY
// (§2.7.7), set when pop() finds work and cleared when it finds the ring empty.
//
// Not implemented: packed virtqueues (§2.8), VIRTIO_F_IN_ORDER.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/result.hpp"
#include "memory/guest_memory.hpp"

namespace qvm::virtio {

// One guest buffer of a chain: already checked to lie in guest memory without wrapping.
struct GuestBuffer {
  uint64_t addr = 0;
  uint32_t len = 0;
};

// A popped descriptor chain: device-readable buffers, then device-writable ones, in chain order.
// Zero-length descriptors are dropped.
struct DescriptorChain {
  uint16_t head = 0;
  std::vector<GuestBuffer> readable;
  std::vector<GuestBuffer> writable;
  uint64_t readable_bytes = 0;  // at most UINT32_MAX
  uint64_t writable_bytes = 0;  // at most UINT32_MAX
};

class Queue {
 public:
  static constexpr uint16_t kMaxSize = 32768;      // virtio 1.2 §2.7: Queue Size ≤ 32768
  static constexpr uint32_t kMaxIndirect = 32768;  // entries of one indirect table

  explicit Queue(uint16_t max_size = 256);

  // Configuration, written by the transport while the queue is not ready.
  uint16_t max_size() const { return max_size_; }
  uint16_t size() const { return size_; }
  void set_size(uint16_t n) { size_ = n; }
  uint64_t desc_addr() const { return desc_; }
  uint64_t avail_addr() const { return avail_; }
  uint64_t used_addr() const { return used_; }
  void set_desc_addr(uint64_t a) { desc_ = a; }
  void set_avail_addr(uint64_t a) { avail_ = a; }
  void set_used_addr(uint64_t a) { used_ = a; }
  // Negotiated ring features (VIRTIO_F_EVENT_IDX §2.7.10, VIRTIO_F_INDIRECT_DESC §2.7.5.3).
  void set_event_idx(bool on) { event_idx_ = on; }
  void set_indirect(bool on) { indirect_ = on; }
  bool event_idx() const { return event_idx_; }
  // Without EVENT_IDX: set VIRTQ_USED_F_NO_NOTIFY (§2.7.7) from the first chain pop() returns until
  // pop() next finds the ring empty (then clear it and re-check, so a buffer added meanwhile
  // is not missed). Only for devices that keep popping until the ring is empty, or resume by
  // themselves (a blocked backend, a batch limit): while the flag is set the driver need not
  // notify. A device property: kept across reset().
  void set_notify_suppression(bool on) { suppress_ = on; }
  // Whether used.flags currently asks the driver not to notify.
  bool notifications_suppressed() const { return no_notify_set_; }

  // Checks size (power of two, 1..max_size), ring alignment (§2.7: 16/2/4) and that all three
  // rings lie in guest memory. The transport calls it before making the queue ready.
  Status validate(const memory::GuestMemory& mem) const;
  bool ready() const { return ready_; }
  // Making a queue ready starts ring processing at index 0.
  void set_ready(bool r);
  // Back to the reset state: not ready, size = max_size, addresses 0, features off.
  void reset();

  // The next available chain; std::nullopt when the ring is empty, the queue is not ready, or it
  // is broken. An error means the chain at the next slot is malformed: that avail entry is
  // consumed and `failed_head()` holds its head (the request should be returned with length 0,
  // which next() does). With EVENT_IDX, an empty ring publishes avail_event (§2.7.10) and
  // re-checks, so a driver notification is never missed; so does clearing NO_NOTIFY.
  Result<std::optional<DescriptorChain>> pop(memory::GuestMemory& mem);
  // pop() that completes malformed chains itself (used length 0, rate-limited log) and carries
  // on; at most `size` malformed chains are skipped per call. What devices normally use.
  std::optional<DescriptorChain> next(memory::GuestMemory& mem);
  // Gives the last popped chain back (a device that cannot process it now).
  void undo_pop();
  uint16_t failed_head() const { return failed_head_; }

  // Puts `head` in the used ring with `written` bytes (§2.7.8). Fails (and breaks the queue) if
  // the used ring is not writable.
  Status add_used(memory::GuestMemory& mem, uint16_t head, uint32_t written);
  // Whether the driver wants an interrupt for the used entries added since the last call that
  // returned true: VIRTQ_AVAIL_F_NO_INTERRUPT (§2.7.7) or used_event (§2.7.10). Call once per
  // batch; a device that added nothing never needs to notify.
  bool needs_notification(const memory::GuestMemory& mem);

  // Ring corruption seen: processing stopped until reset.
  bool needs_reset() const { return broken_; }
  // One line for status reports (SIGUSR1): the device's indices and the driver's, read from the
  // rings (guest memory, so untrusted and shown as read), e.g. "size 256 avail 1200 next_avail
  // 1200 used 1198 ...". Call under the owner's lock, like every other member.
  std::string describe(const memory::GuestMemory& mem) const;
  uint16_t next_avail() const { return next_avail_; }
  uint16_t next_used() const { return next_used_; }

 private:
  Result<std::optional<DescriptorChain>> pop_once(memory::GuestMemory& mem);
  Status walk(const memory::GuestMemory& mem, uint16_t head, DescriptorChain& out) const;
  Error fail(bool ring_level, const Error& e);
  Status write_used_flags(memory::GuestMemory& mem, bool no_notify);

  uint16_t max_size_;
  uint16_t size_;
  uint64_t desc_ = 0, avail_ = 0, used_ = 0;
  bool ready_ = false;
  bool event_idx_ = false;
  bool indirect_ = false;
  bool broken_ = false;
  bool suppress_ = false;       // set_notify_suppression
  bool no_notify_set_ = false;  // used.flags has NO_NOTIFY (written by us)
  uint16_t next_avail_ = 0;
  uint16_t next_used_ = 0;
  uint16_t signalled_used_ = 0;  // used idx at the last notification decision
  uint16_t failed_head_ = 0;
};

}  // namespace qvm::virtio
