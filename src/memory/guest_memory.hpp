// Guest physical memory and the one checked path to it (design §3.2, vm-memory's model).
// Every access from device models goes through read/write/read_obj/write_obj, which check the
// whole range for overflow and containment and return an error instead of touching anything
// outside guest memory. Ranges may span adjacent regions. `host_range()` is the single documented
// raw-pointer path (for iovecs); it checks the same way and only within one region.
#pragma once

#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "base/result.hpp"
#include "memory/mmap_region.hpp"

namespace qvm::memory {

struct Region {
  uint64_t gpa = 0;
  uint64_t size = 0;
  bool readonly = false;  // to the guest (ROM); the host may still write (loading)
  MmapRegion map;
  uint64_t end() const { return gpa + size; }
  uint8_t* host() const { return map.data(); }
};

class GuestMemory {
 public:
  GuestMemory() = default;
  GuestMemory(const GuestMemory&) = delete;
  GuestMemory& operator=(const GuestMemory&) = delete;
  GuestMemory(GuestMemory&&) = default;
  GuestMemory& operator=(GuestMemory&&) = default;

  // Adds zero-filled memory at [gpa, gpa+size). Page aligned, no overlap.
  Status add_region(uint64_t gpa, uint64_t size, bool readonly);

  Status read(uint64_t gpa, std::span<uint8_t> out) const;
  Status write(uint64_t gpa, std::span<const uint8_t> in);
  Status fill(uint64_t gpa, uint8_t value, uint64_t len);

  // Naturally aligned 2/4/8-byte objects are accessed with one load or store, single-copy
  // atomic, as shared ring indices need (virtio 1.2 §2.7.13: the other side updates them
  // concurrently). memcpy may split them: glibc copies 2-3 bytes as a word load plus a byte load,
  // which can combine the low byte of an old avail idx with the high byte of a new one.
  template <typename T>
  Result<T> read_obj(uint64_t gpa) const {
    static_assert(std::is_trivially_copyable_v<T>);
    T v{};
    if constexpr (sizeof(T) == 2 || sizeof(T) == 4 || sizeof(T) == 8) {
      if (gpa % sizeof(T) == 0) {
        auto h = QVM_TRY(host_range(gpa, sizeof(T)));
        using U = Word<sizeof(T)>;
        // SAFETY: host_range checked the range; the address is aligned for U.
        const U u = __atomic_load_n(reinterpret_cast<const U*>(h.data()), __ATOMIC_RELAXED);
        std::memcpy(&v, &u, sizeof v);
        return v;
      }
    }
    QVM_TRY(read(
        gpa, std::span<uint8_t>(reinterpret_cast<uint8_t*>(&v), sizeof v)));  // SAFETY: POD bytes
    return v;
  }
  template <typename T>
  Status write_obj(uint64_t gpa, const T& v) {
    static_assert(std::is_trivially_copyable_v<T>);
    if constexpr (sizeof(T) == 2 || sizeof(T) == 4 || sizeof(T) == 8) {
      if (gpa % sizeof(T) == 0) {
        auto h = QVM_TRY(host_range(gpa, sizeof(T)));
        using U = Word<sizeof(T)>;
        U u;
        std::memcpy(&u, &v, sizeof u);
        // SAFETY: host_range checked the range; the address is aligned for U.
        __atomic_store_n(reinterpret_cast<U*>(h.data()), u, __ATOMIC_RELAXED);
        return {};
      }
    }
    // SAFETY: T is trivially copyable; its bytes are its value.
    return write(gpa, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(&v), sizeof v));
  }

  // Raw host view of [gpa, gpa+len) if it lies inside one region; for building iovecs only.
  Result<std::span<uint8_t>> host_range(uint64_t gpa, uint64_t len) const;
  // True if [gpa, gpa+len) is entirely guest memory.
  bool contains(uint64_t gpa, uint64_t len) const;

  const std::vector<Region>& regions() const { return regions_; }
  uint64_t total_size() const;

 private:
  template <size_t N>
  using Word = std::conditional_t<N == 2, uint16_t, std::conditional_t<N == 4, uint32_t, uint64_t>>;
  const Region* find(uint64_t gpa) const;
  template <typename Fn>
  Status for_each_piece(uint64_t gpa, uint64_t len, Fn&& fn) const;
  std::vector<Region> regions_;  // sorted by gpa
};

}  // namespace qvm::memory
