// virtio-blk request execution (virtio 1.2 §5.2.6): parse and check one descriptor chain, do the
// host I/O, write the status byte. Runs on the notifying thread (threads 1) or on a worker.
#include <fcntl.h>
#include <limits.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "base/log.hpp"
#include "vdev/virtio_blk/virtio_blk.hpp"
#include "virtio/guest_error.hpp"
#include "virtio/queue/chain.hpp"

namespace qvm::vdev {
namespace {

constexpr size_t kBounceSize = 256 * 1024;  // O_DIRECT bounce chunk, a multiple of 4096
constexpr size_t kDirectAlign = 512;        // logical block size O_DIRECT needs on most devices
constexpr size_t kIovMax = IOV_MAX;

bool aligned(const std::vector<iovec>& iov) {
  for (const auto& v : iov)
    // SAFETY: the pointer is only inspected as an integer, never dereferenced here.
    if ((reinterpret_cast<uintptr_t>(v.iov_base) | v.iov_len) % kDirectAlign != 0) return false;
  return true;
}

// Sum of the first `n` iovecs.
uint64_t iov_bytes(const std::vector<iovec>& iov) {
  uint64_t t = 0;
  for (const auto& v : iov) t += v.iov_len;
  return t;
}

uint8_t* bounce(std::unique_ptr<uint8_t, void (*)(void*)>& b) {
  if (!b) {
    void* p = std::aligned_alloc(4096, kBounceSize);
    if (!p) return nullptr;
    b = std::unique_ptr<uint8_t, void (*)(void*)>(static_cast<uint8_t*>(p), std::free);
  }
  return b.get();
}

// Full-length pread/pwrite on a host buffer; false on error or end of file.
bool pread_all(int fd, uint8_t* buf, size_t len, uint64_t off) {
  while (len > 0) {
    ssize_t n = ::pread(fd, buf, len, static_cast<off_t>(off));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    buf += n;
    len -= static_cast<size_t>(n);
    off += static_cast<uint64_t>(n);
  }
  return true;
}

bool pwrite_all(int fd, const uint8_t* buf, size_t len, uint64_t off) {
  while (len > 0) {
    ssize_t n = ::pwrite(fd, buf, len, static_cast<off_t>(off));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    buf += n;
    len -= static_cast<size_t>(n);
    off += static_cast<uint64_t>(n);
  }
  return true;
}

}  // namespace

bool VirtioBlk::range_ok(uint64_t sector, uint64_t sectors) const {
  // No overflow: sector ≤ capacity_ first, then a subtraction.
  return sector <= capacity_ && sectors <= capacity_ - sector;
}

uint32_t VirtioBlk::execute(memory::GuestMemory& mem, const virtio::DescriptorChain& c,
                            uint64_t seq, Scratch& s) {
  // §5.2.6: the status is the last device-writable byte. Without one nothing can be reported.
  if (c.writable_bytes == 0) {
    virtio::log_guest_error("virtio-blk: request %u has no device-writable status byte", c.head);
    return 0;
  }
  const uint64_t data_in = c.writable_bytes - 1;  // writable bytes before the status
  uint64_t written = 0;                           // data bytes written into the chain
  uint8_t status = blk::kStatusIoErr;

  virtio::ChainReader r(mem, c);
  auto hdr = r.read_obj<blk::ReqHeader>();
  if (!hdr) {
    virtio::log_guest_error("virtio-blk: request %u: header shorter than 16 bytes", c.head);
  } else {
    const uint64_t data_out = c.readable_bytes - sizeof(blk::ReqHeader);
    switch (hdr->type) {
      case blk::kTypeIn:
        status = do_read(mem, c, hdr->sector, data_in, s, written);
        break;
      case blk::kTypeOut:
        status = do_write(mem, c, hdr->sector, data_out, s);
        break;
      case blk::kTypeFlush:
        status = do_flush(seq);
        break;
      case blk::kTypeGetId: {
        if (data_in < blk::kIdBytes) {
          virtio::log_guest_error("virtio-blk: GET_ID buffer of %llu bytes (need 20)",
                                  static_cast<unsigned long long>(data_in));
          break;
        }
        std::array<uint8_t, blk::kIdBytes> id{};
        std::memcpy(id.data(), opts_.serial.data(), std::min<size_t>(opts_.serial.size(), 20));
        virtio::ChainWriter w(mem, c);
        if (w.write_exact(id)) {
          written = id.size();
          status = blk::kStatusOk;
        }
        break;
      }
      case blk::kTypeDiscard:
      case blk::kTypeWriteZeroes:
        status = do_discard_zeroes(mem, c, hdr->type, s);
        break;
      default:
        virtio::log_guest_error("virtio-blk: unsupported request type %u", hdr->type);
        status = blk::kStatusUnsupp;
        break;
    }
  }
  virtio::ChainWriter w(mem, c);
  w.advance(data_in);
  if (!w.write_obj(status)) return 0;  // cannot happen: the chain was checked by pop()
  return static_cast<uint32_t>(written + 1);
}

uint8_t VirtioBlk::do_read(memory::GuestMemory& mem, const virtio::DescriptorChain& c,
                           uint64_t sector, uint64_t len, Scratch& s, uint64_t& written) {
  if (len % blk::kSectorSize != 0 || !range_ok(sector, len / blk::kSectorSize)) {
    virtio::log_guest_error("virtio-blk: IN sector %llu + %llu bytes outside the disk or unaligned",
                            static_cast<unsigned long long>(sector),
                            static_cast<unsigned long long>(len));
    return blk::kStatusIoErr;
  }
  uint64_t off = sector * blk::kSectorSize;
  virtio::ChainWriter w(mem, c);
  uint64_t left = len;
  while (left > 0) {
    s.iov.clear();
    auto got = w.iovecs(left, s.iov);
    if (!got || *got == 0) return blk::kStatusIoErr;
    if (s.iov.size() > kIovMax) s.iov.resize(kIovMax);
    uint64_t want = iov_bytes(s.iov);
    if (direct_ && !aligned(s.iov)) {
      // O_DIRECT needs aligned buffers: go through the bounce buffer, one chunk at a time.
      uint8_t* b = bounce(s.bounce);
      const size_t n = static_cast<size_t>(std::min<uint64_t>(left, kBounceSize));
      if (!b || !pread_all(fd_.get(), b, n, off)) return blk::kStatusIoErr;
      if (!w.write_exact(std::span<const uint8_t>(b, n))) return blk::kStatusIoErr;
      written += n;
      off += n;
      left -= n;
      continue;
    }
    ssize_t n =
        ::preadv(fd_.get(), s.iov.data(), static_cast<int>(s.iov.size()), static_cast<off_t>(off));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (n < 0)
        virtio::log_guest_error("virtio-blk: preadv at %llu: %s",
                                static_cast<unsigned long long>(off), std::strerror(errno));
      return blk::kStatusIoErr;  // error, or the file shrank under us
    }
    const auto done = std::min<uint64_t>(static_cast<uint64_t>(n), want);
    w.advance(done);
    written += done;
    off += done;
    left -= done;
  }
  return blk::kStatusOk;
}

uint8_t VirtioBlk::do_write(memory::GuestMemory& mem, const virtio::DescriptorChain& c,
                            uint64_t sector, uint64_t len, Scratch& s) {
  if (opts_.read_only) {
    virtio::log_guest_error("virtio-blk: OUT to a read-only disk");
    return blk::kStatusIoErr;
  }
  if (len % blk::kSectorSize != 0 || !range_ok(sector, len / blk::kSectorSize)) {
    virtio::log_guest_error(
        "virtio-blk: OUT sector %llu + %llu bytes outside the disk or unaligned",
        static_cast<unsigned long long>(sector), static_cast<unsigned long long>(len));
    return blk::kStatusIoErr;
  }
  uint64_t off = sector * blk::kSectorSize;
  virtio::ChainReader r(mem, c);
  if (!r.skip(sizeof(blk::ReqHeader))) return blk::kStatusIoErr;
  uint64_t left = len;
  while (left > 0) {
    s.iov.clear();
    auto got = r.iovecs(left, s.iov);
    if (!got || *got == 0) return blk::kStatusIoErr;
    if (s.iov.size() > kIovMax) s.iov.resize(kIovMax);
    uint64_t want = iov_bytes(s.iov);
    if (direct_ && !aligned(s.iov)) {
      uint8_t* b = bounce(s.bounce);
      const size_t n = static_cast<size_t>(std::min<uint64_t>(left, kBounceSize));
      if (!b || !r.read_exact(std::span<uint8_t>(b, n))) return blk::kStatusIoErr;
      if (!pwrite_all(fd_.get(), b, n, off)) return blk::kStatusIoErr;
      off += n;
      left -= n;
      continue;
    }
    ssize_t n =
        ::pwritev(fd_.get(), s.iov.data(), static_cast<int>(s.iov.size()), static_cast<off_t>(off));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      virtio::log_guest_error("virtio-blk: pwritev at %llu: %s",
                              static_cast<unsigned long long>(off),
                              n < 0 ? std::strerror(errno) : "no progress");
      return blk::kStatusIoErr;
    }
    const auto done = std::min<uint64_t>(static_cast<uint64_t>(n), want);
    r.consume(done);
    off += done;
    left -= done;
  }
  return blk::kStatusOk;
}

uint8_t VirtioBlk::do_flush(uint64_t seq) {
  // §5.2.6.1 (FLUSH): make every completed write durable. Stricter than required: also wait for
  // every request popped before this one (seq order) to finish its host I/O.
  if (seq != 0) {
    std::unique_lock lk(order_mu_);
    order_cv_.wait(lk, [&] { return in_io_.empty() || *in_io_.begin() >= seq; });
  }
  for (;;) {
    if (::fdatasync(fd_.get()) == 0) return blk::kStatusOk;
    if (errno == EINTR) continue;
    log_error("virtio-blk: fdatasync %s: %s", opts_.path.c_str(), std::strerror(errno));
    return blk::kStatusIoErr;
  }
}

uint8_t VirtioBlk::write_zero_bytes(uint64_t off, uint64_t len) {
  // Fallback for WRITE_ZEROES when fallocate cannot: aligned zeros, so O_DIRECT accepts them.
  static constexpr size_t kChunk = 64 * 1024;
  alignas(4096) static const uint8_t zeros[kChunk] = {};
  while (len > 0) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(len, kChunk));
    if (!pwrite_all(fd_.get(), zeros, n, off)) return blk::kStatusIoErr;
    off += n;
    len -= n;
  }
  return blk::kStatusOk;
}

uint8_t VirtioBlk::do_discard_zeroes(memory::GuestMemory& mem, const virtio::DescriptorChain& c,
                                     uint32_t type, Scratch& /*s*/) {
  const bool discard = type == blk::kTypeDiscard;
  const char* what = discard ? "DISCARD" : "WRITE_ZEROES";
  if (opts_.read_only) {
    virtio::log_guest_error("virtio-blk: %s on a read-only disk", what);
    return blk::kStatusIoErr;
  }
  const uint64_t bytes = c.readable_bytes - sizeof(blk::ReqHeader);
  const uint64_t nseg = bytes / sizeof(blk::DiscardWriteZeroes);
  if (bytes % sizeof(blk::DiscardWriteZeroes) != 0 || nseg == 0 || nseg > kMaxDiscardSeg) {
    virtio::log_guest_error("virtio-blk: %s with %llu payload bytes (1..%u segments of 16)", what,
                            static_cast<unsigned long long>(bytes), kMaxDiscardSeg);
    return blk::kStatusIoErr;
  }
  std::array<blk::DiscardWriteZeroes, kMaxDiscardSeg> segs{};
  virtio::ChainReader r(mem, c);
  if (!r.skip(sizeof(blk::ReqHeader))) return blk::kStatusIoErr;
  // Check every segment before applying any (§5.2.6.2).
  for (uint64_t i = 0; i < nseg; ++i) {
    auto seg = r.read_obj<blk::DiscardWriteZeroes>();
    if (!seg) return blk::kStatusIoErr;
    segs[i] = *seg;
    // Reserved flag bits, and the unmap flag on DISCARD, are unsupported (§5.2.6.2).
    const uint32_t allowed = discard ? 0 : blk::kWriteZeroesFlagUnmap;
    if (seg->flags & ~allowed) {
      virtio::log_guest_error("virtio-blk: %s segment flags 0x%x unsupported", what, seg->flags);
      return blk::kStatusUnsupp;
    }
    if (seg->num_sectors > kMaxDiscardSectors || !range_ok(seg->sector, seg->num_sectors)) {
      virtio::log_guest_error("virtio-blk: %s sector %llu + %u outside the disk or too large", what,
                              static_cast<unsigned long long>(seg->sector), seg->num_sectors);
      return blk::kStatusIoErr;
    }
  }
  for (uint64_t i = 0; i < nseg; ++i) {
    const auto off = static_cast<off_t>(segs[i].sector * blk::kSectorSize);
    const auto len = static_cast<off_t>(uint64_t{segs[i].num_sectors} * blk::kSectorSize);
    if (len == 0) continue;
    const bool unmap = discard || (segs[i].flags & blk::kWriteZeroesFlagUnmap);
    const int mode = unmap ? FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE
                           : FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE;
    int rc;
    do {
      rc = ::fallocate(fd_.get(), mode, off, len);
    } while (rc != 0 && errno == EINTR);
    if (rc == 0) continue;
    const int err = errno;
    if (err != EOPNOTSUPP && err != EINVAL && err != ENODEV) {
      log_error("virtio-blk: fallocate %s: %s", opts_.path.c_str(), std::strerror(err));
      return blk::kStatusIoErr;
    }
    // The file system cannot: a discard is only a hint; write zeroes the slow way.
    if (discard) continue;
    const uint8_t st = write_zero_bytes(static_cast<uint64_t>(off), static_cast<uint64_t>(len));
    if (st != blk::kStatusOk) return st;
  }
  return blk::kStatusOk;
}

}  // namespace qvm::vdev
