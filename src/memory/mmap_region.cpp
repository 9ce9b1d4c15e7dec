#include "memory/mmap_region.hpp"

#include <sys/mman.h>

#include <cerrno>
#include <cstdint>

namespace qvm::memory {

namespace {
constexpr size_t kHugePage = size_t{2} << 20;
}  // namespace

Result<MmapRegion> MmapRegion::anonymous(size_t size, uint64_t guest_addr) {
  // Guest RAM of 2 MiB or more asks for transparent huge pages (as QEMU does for its RAM
  // blocks): fewer TLB misses and page faults for the guest and for qvm's own copies, and
  // O_DIRECT transfers from guest buffers reach the block layer as few large segments instead of
  // 4 KiB pages. Measured (docs/performance.md, virtio-blk engines): O_DIRECT 1 MiB reads at QD4
  // went from 0.38x to 0.94x of QEMU. Best effort: without THP it is plain memory.
  const bool huge = size >= kHugePage;
  const size_t span = huge ? size + kHugePage : size;
  void* p = ::mmap(nullptr, span, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) return Error::from_errno("mmap of guest memory", errno);
  // Guest memory stays out of qvm's core dumps (docs/security.md): a crash report of the VMM
  // must not carry the guest's secrets, nor gigabytes of them. Guest dumps read it directly.
  (void)::madvise(p, span, MADV_DONTDUMP);
  if (!huge) return MmapRegion(p, size);
  // The lowest start >= p that is congruent with guest_addr modulo 2 MiB (< 2 MiB above p, so
  // the region fits in the span); the slack on both sides is given back.
  auto* raw = static_cast<uint8_t*>(p);
  const uintptr_t at = reinterpret_cast<uintptr_t>(raw);
  const size_t head = static_cast<size_t>((guest_addr - at) & (kHugePage - 1));
  if (head != 0) ::munmap(raw, head);
  if (const size_t tail = kHugePage - head; tail != 0) ::munmap(raw + head + size, tail);
  (void)::madvise(raw + head, size, MADV_HUGEPAGE);
  return MmapRegion(raw + head, size);
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
