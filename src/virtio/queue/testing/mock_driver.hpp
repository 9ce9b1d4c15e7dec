// MockDriver plays the guest side of a split virtqueue (virtio 1.2 §2.7) for tests and fuzzers:
// it lays out the rings in a GuestMemory, allocates buffers, publishes chains (direct or
// indirect) and reads the used ring back. It writes raw descriptors too, so tests can build
// every malformed shape. Header-only; no checking beyond what the tests need.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

#include "memory/guest_memory.hpp"
#include "virtio/queue/virtqueue.hpp"
#include "virtio/virtio_defs.hpp"

namespace qvm::virtio::testing {

class MockDriver {
 public:
  struct Seg {
    uint32_t len = 0;
    bool write = false;           // device-writable
    std::vector<uint8_t> data{};  // initial contents of a readable buffer (zero-padded)
  };

  // Rings at `base`: descriptors, avail ring (+ used_event), used ring (`used_align`-aligned: 4,
  // or 4096 for the legacy layout; + avail_event); buffers are allocated from the next page after
  // the used ring upward.
  MockDriver(memory::GuestMemory& mem, uint16_t size, uint64_t base = 0, uint64_t used_align = 4)
      : mem_(mem), size_(size), desc_(base), avail_(base + 16ull * size) {
    used_ = (avail_ + 6 + 2ull * size + used_align - 1) & ~(used_align - 1);
    heap_ = (used_ + 6 + 8ull * size + 0xfff) & ~0xfffull;
  }

  uint64_t desc_addr() const { return desc_; }
  uint64_t avail_addr() const { return avail_; }
  uint64_t used_addr() const { return used_; }
  uint16_t size() const { return size_; }

  // Sets a queue's size and addresses and makes it ready.
  void configure(Queue& q, bool event_idx = false, bool indirect = true) const {
    q.set_size(size_);
    q.set_desc_addr(desc_);
    q.set_avail_addr(avail_);
    q.set_used_addr(used_);
    q.set_event_idx(event_idx);
    q.set_indirect(indirect);
    q.set_ready(true);
  }

  uint64_t alloc(uint64_t len) {
    uint64_t a = heap_;
    heap_ = (heap_ + len + 15) & ~15ull;
    return a;
  }

  void write_desc(uint64_t table, uint32_t i, const VirtqDesc& d) {
    (void)mem_.write_obj(table + 16ull * i, d);
  }
  void set_desc(uint32_t i, const VirtqDesc& d) { write_desc(desc_, i, d); }

  // Builds a chain of `segs` from descriptor `first` on (consecutive indices, wrapping), or as an
  // indirect table referenced by descriptor `first`. Returns the head index (not yet published).
  uint16_t add_chain(std::span<const Seg> segs, bool indirect = false, uint16_t first = 0xffff) {
    if (first == 0xffff) first = next_desc_;
    if (indirect) {
      uint64_t table = alloc(16ull * segs.size());
      for (size_t i = 0; i < segs.size(); ++i)
        write_desc(table, static_cast<uint32_t>(i),
                   make(segs[i], i + 1 < segs.size(), static_cast<uint16_t>(i + 1)));
      set_desc(first,
               VirtqDesc{table, static_cast<uint32_t>(16 * segs.size()), kDescFlagIndirect, 0});
      next_desc_ = static_cast<uint16_t>((first + 1) % size_);
      return first;
    }
    uint16_t idx = first;
    for (size_t i = 0; i < segs.size(); ++i) {
      auto nxt = static_cast<uint16_t>((idx + 1) % size_);
      set_desc(idx, make(segs[i], i + 1 < segs.size(), nxt));
      idx = nxt;
    }
    next_desc_ = idx;
    return first;
  }

  // Puts `head` in the next avail slot and bumps avail idx.
  void publish(uint16_t head) {
    (void)mem_.write_obj<uint16_t>(avail_ + 4 + 2ull * (avail_idx_ % size_), head);
    set_avail_idx(static_cast<uint16_t>(avail_idx_ + 1));
  }
  uint16_t add_and_publish(std::span<const Seg> segs, bool indirect = false) {
    uint16_t h = add_chain(segs, indirect);
    publish(h);
    return h;
  }
  void set_avail_idx(uint16_t v) {
    avail_idx_ = v;
    (void)mem_.write_obj<uint16_t>(avail_ + 2, v);
  }
  void set_avail_flags(uint16_t f) { (void)mem_.write_obj<uint16_t>(avail_, f); }
  void set_used_event(uint16_t v) { (void)mem_.write_obj<uint16_t>(avail_ + 4 + 2ull * size_, v); }

  uint16_t used_idx() const { return read16(used_ + 2); }
  uint16_t used_flags() const { return read16(used_); }
  uint16_t avail_event() const { return read16(used_ + 4 + 8ull * size_); }
  VirtqUsedElem used(uint16_t i) const {
    auto e = mem_.read_obj<VirtqUsedElem>(used_ + 4 + 8ull * (i % size_));
    return e ? *e : VirtqUsedElem{0xffffffff, 0};
  }
  // Buffer address of the i-th segment of the last chain built (direct chains only).
  uint64_t seg_addr(size_t i) const { return last_addrs_.at(i); }
  std::vector<uint8_t> read_bytes(uint64_t addr, size_t len) const {
    std::vector<uint8_t> v(len);
    (void)mem_.read(addr, v);
    return v;
  }

 private:
  VirtqDesc make(const Seg& s, bool has_next, uint16_t next) {
    uint64_t a = alloc(s.len);
    if (!s.data.empty())
      (void)mem_.write(
          a, std::span<const uint8_t>(s.data).first(std::min<size_t>(s.data.size(), s.len)));
    if (last_chain_started_ == false) last_addrs_.clear();
    last_chain_started_ = has_next;
    last_addrs_.push_back(a);
    uint16_t flags =
        static_cast<uint16_t>((s.write ? kDescFlagWrite : 0) | (has_next ? kDescFlagNext : 0));
    return VirtqDesc{a, s.len, flags, next};
  }
  uint16_t read16(uint64_t a) const {
    auto v = mem_.read_obj<uint16_t>(a);
    return v ? *v : 0xffff;
  }

  memory::GuestMemory& mem_;
  uint16_t size_;
  uint64_t desc_, avail_, used_, heap_;
  uint16_t avail_idx_ = 0;
  uint16_t next_desc_ = 0;
  std::vector<uint64_t> last_addrs_;
  bool last_chain_started_ = false;
};

}  // namespace qvm::virtio::testing
