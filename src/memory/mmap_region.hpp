// RAII owner of one host memory mapping.
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>

#include "base/result.hpp"

namespace qvm::memory {

class MmapRegion {
 public:
  MmapRegion() = default;
  // Anonymous, private, zero-filled, reserved lazily (MAP_NORESERVE): untouched guest RAM costs
  // no host memory. From 2 MiB up the mapping asks for transparent huge pages and its start is
  // congruent with `guest_addr` modulo 2 MiB, so every 2 MiB-aligned guest range is one host
  // huge page that KVM can map as one large page too.
  static Result<MmapRegion> anonymous(size_t size, uint64_t guest_addr = 0);
  // A shared mapping of `fd` (memfd, shared-memory regions).
  static Result<MmapRegion> shared(int fd, size_t size, size_t offset = 0);

  MmapRegion(const MmapRegion&) = delete;
  MmapRegion& operator=(const MmapRegion&) = delete;
  MmapRegion(MmapRegion&& o) noexcept
      : addr_(std::exchange(o.addr_, nullptr)), size_(std::exchange(o.size_, 0)) {}
  MmapRegion& operator=(MmapRegion&& o) noexcept;
  ~MmapRegion();

  uint8_t* data() const { return static_cast<uint8_t*>(addr_); }
  size_t size() const { return size_; }

 private:
  MmapRegion(void* a, size_t s) : addr_(a), size_(s) {}
  void reset();
  void* addr_ = nullptr;
  size_t size_ = 0;
};

}  // namespace qvm::memory
