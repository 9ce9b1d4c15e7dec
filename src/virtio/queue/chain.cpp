#include "virtio/queue/chain.hpp"

#include <algorithm>

namespace qvm::virtio {
namespace detail {

GuestBuffer BufferCursor::peek(uint64_t max) const {
  if (left_ == 0 || max == 0 || index_ >= bufs_.size()) return {};
  const GuestBuffer& b = bufs_[index_];
  const uint64_t n = std::min<uint64_t>(b.len - offset_, max);
  return GuestBuffer{b.addr + offset_, static_cast<uint32_t>(n)};
}

void BufferCursor::advance(uint64_t n) {
  n = std::min(n, left_);
  left_ -= n;
  done_ += n;
  while (n > 0 && index_ < bufs_.size()) {
    const uint64_t in_buf = bufs_[index_].len - offset_;
    if (n < in_buf) {
      offset_ += n;
      return;
    }
    n -= in_buf;
    ++index_;
    offset_ = 0;
  }
}

Result<uint64_t> BufferCursor::iovecs(const memory::GuestMemory& mem, uint64_t max,
                                      std::vector<iovec>& out) const {
  max = std::min(max, left_);
  uint64_t total = 0;
  size_t i = index_;
  uint64_t off = offset_;
  while (total < max && i < bufs_.size()) {
    uint64_t addr = bufs_[i].addr + off;
    uint64_t len = std::min<uint64_t>(bufs_[i].len - off, max - total);
    // A buffer may span adjacent regions: one iovec per region piece, each checked again.
    while (len > 0) {
      uint64_t piece = len;
      for (const auto& r : mem.regions())
        if (addr >= r.gpa && addr < r.end()) piece = std::min(len, r.end() - addr);
      auto host = mem.host_range(addr, piece);
      if (!host) return std::move(host).error();
      out.push_back(iovec{host->data(), host->size()});
      addr += piece;
      len -= piece;
      total += piece;
    }
    ++i;
    off = 0;
  }
  return total;
}

}  // namespace detail

Result<size_t> ChainReader::read(std::span<uint8_t> out) {
  size_t done = 0;
  while (done < out.size()) {
    GuestBuffer piece = cur_.peek(out.size() - done);
    if (piece.len == 0) break;
    QVM_TRY(mem_.read(piece.addr, out.subspan(done, piece.len)));
    cur_.advance(piece.len);
    done += piece.len;
  }
  return done;
}

Status ChainReader::read_exact(std::span<uint8_t> out) {
  if (out.size() > remaining()) return make_error("descriptor chain too short to read from");
  QVM_TRY(read(out));
  return {};
}

Status ChainReader::skip(uint64_t n) {
  if (n > remaining()) return make_error("descriptor chain too short to skip");
  cur_.advance(n);
  return {};
}

Result<size_t> ChainWriter::write(std::span<const uint8_t> in) {
  size_t done = 0;
  while (done < in.size()) {
    GuestBuffer piece = cur_.peek(in.size() - done);
    if (piece.len == 0) break;
    QVM_TRY(mem_.write(piece.addr, in.subspan(done, piece.len)));
    cur_.advance(piece.len);
    done += piece.len;
  }
  return done;
}

Status ChainWriter::write_exact(std::span<const uint8_t> in) {
  if (in.size() > remaining()) return make_error("descriptor chain too short to write to");
  QVM_TRY(write(in));
  return {};
}

}  // namespace qvm::virtio
