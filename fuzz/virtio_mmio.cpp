// Fuzz target: the virtio-mmio register stream (virtio 1.2 §4.2) with virtio-entropy behind it.
// Input: 7-byte operations {op, offset le16, value le32}. op & 7: 0 read, 1 write (size from
// op >> 3: 1/2/4/8 bytes), 2 handle_notify(value), 3 advance the clock, 4 poke 4 bytes of guest
// memory (so rings can be built), 5 legacy/modern switch at the start only. Property: no crash,
// hang, leak or out-of-bounds access.
#include <cstdint>
#include <memory>

#include "base/clock.hpp"
#include "memory/guest_memory.hpp"
#include "vdev/virtio_entropy/virtio_entropy.hpp"
#include "virtio/transport/mmio.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace qvm;
  if (size < 1) return 0;
  memory::GuestMemory mem;
  if (!mem.add_region(0, 0x10000, false)) return 0;
  FakeClock clock;
  const uint64_t rate = (data[0] & 1) ? 0 : uint64_t{data[0]} * 16;
  auto dev = std::make_shared<vdev::VirtioEntropy>(clock, vdev::VirtioEntropy::Options{rate},
                                                   [](std::span<uint8_t> out) -> Status {
                                                     for (auto& b : out) b = 0xa5;
                                                     return {};
                                                   });
  virtio::MmioOptions opts;
  opts.legacy = (data[0] & 2) != 0;
  int raises = 0;
  virtio::MmioTransport t(
      mem, dev, [&] { ++raises; }, opts);
  t.set_queue_ready_hook([](uint16_t, bool) {});
  static constexpr size_t kSizes[4] = {1, 2, 4, 8};
  for (size_t at = 1; at + 7 <= size; at += 7) {
    const uint8_t op = data[at];
    const auto addr16 = static_cast<uint16_t>(data[at + 1] | (data[at + 2] << 8));
    const uint64_t off = addr16 % 0x200u;
    const uint32_t value =
        static_cast<uint32_t>(data[at + 3]) | (static_cast<uint32_t>(data[at + 4]) << 8) |
        (static_cast<uint32_t>(data[at + 5]) << 16) | (static_cast<uint32_t>(data[at + 6]) << 24);
    uint8_t bytes[8] = {};
    const size_t n = kSizes[(op >> 3) & 3];
    switch (op & 7) {
      case 0:
        t.read(off, std::span<uint8_t>(bytes, n));
        break;
      case 1:
        bus::store_le(std::span<uint8_t>(bytes, n), value);
        t.write(off, std::span<const uint8_t>(bytes, n));
        break;
      case 2:
        t.handle_notify(static_cast<uint16_t>(value));
        break;
      case 3:
        clock.mono += std::chrono::microseconds(value);
        break;
      case 4:
        (void)mem.write_obj<uint32_t>(addr16 & 0xfffcu, value);
        break;
      default:
        break;
    }
  }
  (void)t.status_report();  // SIGUSR1 report: rings and device state
  return 0;
}
