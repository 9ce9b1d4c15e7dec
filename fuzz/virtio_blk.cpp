// Fuzz target: the virtio-blk request path (virtio 1.2 §5.2.6) against a 64 KiB memfd disk.
// Input: one flag byte (worker threads, EVENT_IDX, read-only, indirect chains, io_uring), then
// request descriptions: a segment count, a type selector, a sector, then per segment a length and a
// device-writable bit, readable segments taking their contents from the input. Sometimes a raw
// descriptor is written instead, for malformed chains.
// Properties: no crash, hang or sanitizer report; every published request comes back in the used
// ring (one used entry per avail entry); the disk never grows (no access outside the capacity); a
// read-only disk never changes. A raw descriptor may aim device-writable buffers at the rings
// themselves (a hostile driver harms only itself; with io_uring the data lands after other
// requests' used entries), so the used-ring checks apply to inputs without raw descriptors.
#include "vdev/virtio_blk/virtio_blk.hpp"

#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "fuzz_input.hpp"
#include "virtio/queue/testing/mock_driver.hpp"
#include "virtio/virtio_defs.hpp"

namespace {

using qvm::fuzz::check;
using qvm::fuzz::Input;
using qvm::fuzz::NullInterrupt;

using qvm::virtio::testing::MockDriver;
constexpr uint64_t kDisk = 64 * 1024;
constexpr uint16_t kQueue = 64;

int disk_fd() {
  static int fd = [] {
    int f = ::memfd_create("qvm-fuzz-blk", MFD_CLOEXEC);
    check(f >= 0);
    return f;
  }();
  return fd;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace qvm;
  if (size < 1) return 0;
  Input in(data, size);
  const uint8_t flags = in.u8();
  const int fd = disk_fd();
  check(::ftruncate(fd, 0) == 0 && ::ftruncate(fd, kDisk) == 0);
  std::vector<uint8_t> seed(kDisk, 0x5a);
  check(::pwrite(fd, seed.data(), seed.size(), 0) == static_cast<ssize_t>(kDisk));

  memory::GuestMemory mem;
  check(mem.add_region(0, 4ull << 20, false).ok());
  std::vector<virtio::Queue> queues;
  queues.emplace_back(vdev::VirtioBlk::kQueueSize);
  MockDriver drv(mem, kQueue);
  drv.configure(queues[0], flags & 2);
  NullInterrupt irq;
  vdev::VirtioBlk::Options o;
  o.path = "/proc/self/fd/" + std::to_string(fd);
  o.threads = (flags & 1) ? 2 : 1;
  if ((flags & 0x10) && o.threads == 1) o.aio = vdev::VirtioBlk::Aio::kUring;
  o.read_only = flags & 4;
  o.serial = "fuzz";
  auto dev = vdev::VirtioBlk::open(o);
  check(dev.ok());
  virtio::ActivationContext ctx{mem, queues, irq, 0};
  check((*dev)->activate(ctx).ok());

  static const uint32_t kTypes[] = {vdev::blk::kTypeIn,      vdev::blk::kTypeOut,
                                    vdev::blk::kTypeFlush,   vdev::blk::kTypeGetId,
                                    vdev::blk::kTypeDiscard, vdev::blk::kTypeWriteZeroes};
  uint16_t published = 0;
  bool raw = false;
  while (!in.empty() && published < kQueue / 6) {
    const uint8_t shape = in.u8();
    if (shape == 0xff) {  // a raw (probably malformed) descriptor as the head
      raw = true;
      const auto idx = static_cast<uint16_t>(in.u8() % kQueue);
      drv.set_desc(idx, virtio::VirtqDesc{in.u64() & 0x7fffff, in.u16(), in.u16(), in.u16()});
      drv.publish(idx);
      ++published;
      continue;
    }
    const uint8_t sel = in.u8();
    const uint32_t type = sel < 240 ? kTypes[sel % 6] : static_cast<uint32_t>(in.u16());
    uint64_t sector = in.u64();
    if (!(shape & 0x80)) sector %= (kDisk / 512) + 4;  // mostly near the disk
    std::vector<MockDriver::Seg> segs;
    vdev::blk::ReqHeader h{type, 0, sector};
    std::vector<uint8_t> hb(sizeof h);
    std::memcpy(hb.data(), &h, sizeof h);
    const uint32_t hlen = (shape & 0x40) ? in.u8() % 24u : 16u;
    segs.push_back({hlen, false, hb});
    const int nseg = shape % 4;
    for (int i = 0; i < nseg; ++i) {
      const uint16_t v = in.u16();
      MockDriver::Seg s{static_cast<uint32_t>(v & 0x1fff), (v & 0x8000) != 0, {}};
      if (!s.write) s.data = in.bytes(std::min<uint32_t>(s.len, 64));
      segs.push_back(s);
    }
    if (!(shape & 0x20)) segs.push_back({1, true, {}});  // status byte (usually)
    drv.add_and_publish(segs, (flags & 8) != 0);
    ++published;
  }
  (*dev)->process_queue(0);
  (*dev)->wait_idle();
  (*dev)->process_queue(0);  // nothing left; must not block
  (*dev)->wait_idle();

  if (!raw && !queues[0].needs_reset()) {
    check(drv.used_idx() == published);
    for (uint16_t i = 0; i < published; ++i) check(drv.used(i).id < kQueue);
  }
  struct stat st {};
  check(::fstat(fd, &st) == 0 && static_cast<uint64_t>(st.st_size) == kDisk);
  if (o.read_only) {
    std::vector<uint8_t> now(kDisk);
    check(::pread(fd, now.data(), now.size(), 0) == static_cast<ssize_t>(kDisk));
    check(now == seed);
  }
  (*dev)->reset();
  return 0;
}
