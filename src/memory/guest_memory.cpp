#include "memory/guest_memory.hpp"

#include <algorithm>

#include "base/log.hpp"

namespace qvm::memory {

Status GuestMemory::add_region(uint64_t gpa, uint64_t size, bool readonly) {
  if (size == 0 || ((gpa | size) & 0xfff) != 0 || gpa + size < gpa)
    return make_error(strprintf("guest memory region 0x%llx+0x%llx is not page aligned or wraps",
                                static_cast<unsigned long long>(gpa),
                                static_cast<unsigned long long>(size)));
  for (const auto& r : regions_)
    if (gpa < r.end() && r.gpa < gpa + size)
      return make_error(strprintf("guest memory region at 0x%llx overlaps another",
                                  static_cast<unsigned long long>(gpa)));
  Region r;
  r.gpa = gpa;
  r.size = size;
  r.readonly = readonly;
  r.map = QVM_TRY(MmapRegion::anonymous(size, gpa));
  regions_.push_back(std::move(r));
  std::sort(regions_.begin(), regions_.end(),
            [](const Region& a, const Region& b) { return a.gpa < b.gpa; });
  return {};
}

const Region* GuestMemory::find(uint64_t gpa) const {
  // Few regions (a handful): a linear scan is as fast as anything else here.
  for (const auto& r : regions_)
    if (gpa >= r.gpa && gpa < r.end()) return &r;
  return nullptr;
}

bool GuestMemory::contains(uint64_t gpa, uint64_t len) const {
  if (gpa + len < gpa) return false;
  uint64_t at = gpa, left = len;
  while (left > 0) {
    const Region* r = find(at);
    if (!r) return false;
    uint64_t n = std::min(left, r->end() - at);
    at += n;
    left -= n;
  }
  return true;
}

namespace {
Error out_of_range(uint64_t gpa, uint64_t len) {
  return make_error(strprintf("guest range 0x%llx+0x%llx is not guest memory",
                              static_cast<unsigned long long>(gpa),
                              static_cast<unsigned long long>(len)));
}
}  // namespace

// Calls fn(host pointer, offset into the access, length) for each region-sized piece of
// [gpa, gpa+len) after checking that the whole range is guest memory.
template <typename Fn>
Status GuestMemory::for_each_piece(uint64_t gpa, uint64_t len, Fn&& fn) const {
  if (!contains(gpa, len)) return out_of_range(gpa, len);
  uint64_t done = 0;
  while (done < len) {
    const Region* r = find(gpa + done);
    if (r == nullptr) return out_of_range(gpa, len);  // unreachable after contains()
    uint64_t n = std::min(len - done, r->end() - (gpa + done));
    fn(r->host() + (gpa + done - r->gpa), static_cast<size_t>(done), static_cast<size_t>(n));
    done += n;
  }
  return {};
}

Status GuestMemory::read(uint64_t gpa, std::span<uint8_t> out) const {
  return for_each_piece(gpa, out.size(), [&](uint8_t* host, size_t at, size_t n) {
    std::memcpy(out.data() + at, host, n);
  });
}

Status GuestMemory::write(uint64_t gpa, std::span<const uint8_t> in) {
  return for_each_piece(gpa, in.size(), [&](uint8_t* host, size_t at, size_t n) {
    std::memcpy(host, in.data() + at, n);
  });
}

Status GuestMemory::fill(uint64_t gpa, uint8_t value, uint64_t len) {
  return for_each_piece(gpa, len,
                        [&](uint8_t* host, size_t, size_t n) { std::memset(host, value, n); });
}

Result<std::span<uint8_t>> GuestMemory::host_range(uint64_t gpa, uint64_t len) const {
  const Region* r = find(gpa);
  if (!r || gpa + len < gpa || gpa + len > r->end()) return out_of_range(gpa, len);
  return std::span<uint8_t>(r->host() + (gpa - r->gpa), static_cast<size_t>(len));
}

uint64_t GuestMemory::total_size() const {
  uint64_t t = 0;
  for (const auto& r : regions_) t += r.size;
  return t;
}

}  // namespace qvm::memory
