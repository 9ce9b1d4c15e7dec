// Byte streams over a popped descriptor chain (design §3.3): ChainReader consumes the
// device-readable buffers in order, ChainWriter fills the device-writable ones. Every copy goes
// through GuestMemory. For host I/O with readv/writev, iovecs() hands out host views of the next
// bytes, each built with GuestMemory::host_range() (re-checked per buffer, split at region
// boundaries); the caller then calls consume()/advance() with what the system call transferred.
#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <span>
#include <type_traits>
#include <vector>

#include "base/result.hpp"
#include "memory/guest_memory.hpp"
#include "virtio/queue/virtqueue.hpp"

namespace qvm::virtio {

namespace detail {
// A cursor over a list of guest buffers.
class BufferCursor {
 public:
  explicit BufferCursor(std::span<const GuestBuffer> bufs, uint64_t total)
      : bufs_(bufs), left_(total) {}
  uint64_t remaining() const { return left_; }
  uint64_t done() const { return done_; }
  // Next contiguous guest piece of at most `max` bytes (len 0 when exhausted).
  GuestBuffer peek(uint64_t max) const;
  void advance(uint64_t n);
  // Host views of the next at most `max` bytes into `out` (appended); returns the byte count.
  Result<uint64_t> iovecs(const memory::GuestMemory& mem, uint64_t max,
                          std::vector<iovec>& out) const;

 private:
  std::span<const GuestBuffer> bufs_;
  size_t index_ = 0;
  uint64_t offset_ = 0;  // into bufs_[index_]
  uint64_t left_ = 0;
  uint64_t done_ = 0;
};
}  // namespace detail

class ChainReader {
 public:
  ChainReader(const memory::GuestMemory& mem, const DescriptorChain& chain)
      : mem_(mem), cur_(chain.readable, chain.readable_bytes) {}
  uint64_t remaining() const { return cur_.remaining(); }
  uint64_t bytes_read() const { return cur_.done(); }
  // Copies min(out.size(), remaining()) bytes; returns how many.
  Result<size_t> read(std::span<uint8_t> out);
  // Exactly out.size() bytes, or an error (and nothing consumed) if the chain is shorter.
  Status read_exact(std::span<uint8_t> out);
  template <typename T>
  Result<T> read_obj() {
    static_assert(std::is_trivially_copyable_v<T>);
    T v{};
    // SAFETY: T is trivially copyable; filling its bytes makes a value.
    QVM_TRY(read_exact(std::span<uint8_t>(reinterpret_cast<uint8_t*>(&v), sizeof v)));
    return v;
  }
  Status skip(uint64_t n);
  // Host views of the next at most `max` readable bytes (for writev); then consume(n).
  Result<uint64_t> iovecs(uint64_t max, std::vector<iovec>& out) const {
    return cur_.iovecs(mem_, max, out);
  }
  void consume(uint64_t n) { cur_.advance(n); }

 private:
  const memory::GuestMemory& mem_;
  detail::BufferCursor cur_;
};

class ChainWriter {
 public:
  ChainWriter(memory::GuestMemory& mem, const DescriptorChain& chain)
      : mem_(mem), cur_(chain.writable, chain.writable_bytes) {}
  uint64_t remaining() const { return cur_.remaining(); }
  // What to report as the used length (§2.7.8): bytes written so far, ≤ UINT32_MAX.
  uint32_t bytes_written() const { return static_cast<uint32_t>(cur_.done()); }
  // Copies min(in.size(), remaining()) bytes; returns how many.
  Result<size_t> write(std::span<const uint8_t> in);
  // Exactly in.size() bytes, or an error (and nothing written) if the chain is shorter.
  Status write_exact(std::span<const uint8_t> in);
  template <typename T>
  Status write_obj(const T& v) {
    static_assert(std::is_trivially_copyable_v<T>);
    // SAFETY: T is trivially copyable; its bytes are its value.
    return write_exact(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(&v), sizeof v));
  }
  // Host views of the next at most `max` writable bytes (for readv); then advance(n).
  Result<uint64_t> iovecs(uint64_t max, std::vector<iovec>& out) const {
    return cur_.iovecs(mem_, max, out);
  }
  void advance(uint64_t n) { cur_.advance(n); }

 private:
  memory::GuestMemory& mem_;
  detail::BufferCursor cur_;
};

}  // namespace qvm::virtio
