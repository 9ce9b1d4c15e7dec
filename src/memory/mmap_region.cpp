#include "memory/mmap_region.hpp"

#include <sys/mman.h>

#include <cerrno>

namespace qvm::memory {

Result<MmapRegion> MmapRegion::anonymous(size_t size) {
  void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) return Error::from_errno("mmap of guest memory", errno);
  return MmapRegion(p, size);
}

Result<MmapRegion> MmapRegion::shared(int fd, size_t size, size_t offset) {
  void* p =
      ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, static_cast<off_t>(offset));
  if (p == MAP_FAILED) return Error::from_errno("mmap of shared memory", errno);
  return MmapRegion(p, size);
}

MmapRegion& MmapRegion::operator=(MmapRegion&& o) noexcept {
  if (this != &o) {
    reset();
    addr_ = std::exchange(o.addr_, nullptr);
    size_ = std::exchange(o.size_, 0);
  }
  return *this;
}

MmapRegion::~MmapRegion() {
  reset();
}

void MmapRegion::reset() {
  if (addr_ != nullptr) ::munmap(addr_, size_);
  addr_ = nullptr;
  size_ = 0;
}

}  // namespace qvm::memory
