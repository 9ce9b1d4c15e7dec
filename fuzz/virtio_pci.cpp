// Fuzz target: the virtio-pci transport (virtio 1.2 §4.1) with virtio-entropy behind it:
// configuration space through PciRoot (capabilities, BARs, MSI-X control, the PCI_CFG window)
// and accesses to BAR 4 (common/ISR/device/notify) and BAR 2 (MSI-X table and PBA).
// Built a second time with QVM_FUZZ_PCI_LEGACY=1 (fuzz_virtio_pci_legacy): the legacy transport
// (§4.1.4.8), where "BAR 4" below is I/O BAR 0 with the legacy header (features, queue PFN,
// queue select/notify, status, ISR, MSI-X vectors, device configuration).
// Input: byte 0 picks the rate limit; then 7-byte operations {op, offset le16, value le32}.
// op & 15: 0/1 config read/write, 2/3 BAR 4 read/write, 4/5 BAR 2 read/write (size from
// (op >> 4) & 3: 1/2/4/8 bytes), 6 handle_notify(value), 7 poke 4 bytes of guest memory (to
// build rings), 8 advance the clock. Property: no crash, hang, leak or out-of-bounds access.
#include <cstdint>
#include <memory>

#include "base/clock.hpp"
#include "memory/guest_memory.hpp"
#include "pci/pci_root.hpp"
#include "vdev/virtio_entropy/virtio_entropy.hpp"
#include "virtio/transport/pci.hpp"

#ifndef QVM_FUZZ_PCI_LEGACY
#define QVM_FUZZ_PCI_LEGACY 0
#endif

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
  int msis = 0;
  bool level = false;
  virtio::PciOptions opts;
  opts.legacy = QVM_FUZZ_PCI_LEGACY != 0;
  constexpr uint8_t kMain =
      QVM_FUZZ_PCI_LEGACY ? virtio::PciTransport::kLegacyBar : virtio::PciTransport::kVirtioBar;
  auto t = std::make_shared<virtio::PciTransport>(
      mem, dev, [&](uint64_t, uint32_t) { ++msis; }, [&](bool l) { level = l; }, opts);
  t->set_queue_ready_hook([](uint16_t, bool) {});
  pci::PciRoot root;
  if (!root.add(1, 0, t)) return 0;
  auto bar4 = t->bar_device(kMain);
  auto bar2 = t->bar_device(virtio::PciTransport::kMsixBar);
  uint64_t size4 = 0, size2 = 0;
  for (const auto& b : t->bars()) (b.index == kMain ? size4 : size2) = b.size;
  static constexpr size_t kSizes[4] = {1, 2, 4, 8};
  for (size_t at = 1; at + 7 <= size; at += 7) {
    const uint8_t op = data[at];
    const auto off16 = static_cast<uint16_t>(data[at + 1] | (data[at + 2] << 8));
    const uint32_t value =
        static_cast<uint32_t>(data[at + 3]) | (static_cast<uint32_t>(data[at + 4]) << 8) |
        (static_cast<uint32_t>(data[at + 5]) << 16) | (static_cast<uint32_t>(data[at + 6]) << 24);
    uint8_t bytes[8] = {};
    const size_t n = kSizes[(op >> 4) & 3];
    const auto cfg_off = static_cast<uint16_t>(off16 & 0xfff);
    const unsigned cfg_n = n > 4 ? 4u : static_cast<unsigned>(n);
    switch (op & 15) {
      case 0:
        (void)root.read(0, 1, 0, cfg_off, cfg_n);
        break;
      case 1:
        root.write(0, 1, 0, cfg_off, cfg_n, value);
        break;
      case 2:
        bar4->read(off16 % size4, std::span<uint8_t>(bytes, n));
        break;
      case 3:
        bus::store_le(std::span<uint8_t>(bytes, n), value);
        bar4->write(off16 % size4, std::span<const uint8_t>(bytes, n));
        break;
      case 4:
        bar2->read(off16 % size2, std::span<uint8_t>(bytes, n));
        break;
      case 5:
        bus::store_le(std::span<uint8_t>(bytes, n), value);
        bar2->write(off16 % size2, std::span<const uint8_t>(bytes, n));
        break;
      case 6:
        t->handle_notify(static_cast<uint16_t>(value));
        break;
      case 7:
        (void)mem.write_obj<uint32_t>(off16 & 0xfffcu, value);
        break;
      case 8:
        clock.mono += std::chrono::microseconds(value);
        break;
      default:
        break;
    }
  }
  (void)t->status_report();  // SIGUSR1 report: rings and device state
  return 0;
}
