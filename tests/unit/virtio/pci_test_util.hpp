// A guest-driver view of a virtio-pci function for the transport tests: configuration space
// through PciRoot (as port 0xCF8/ECAM would), the capability walk of virtio 1.2 §4.1.4, BAR
// accesses through the transport's bar devices.
#pragma once

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <vector>

#include "bus/bus.hpp"
#include "pci/pci_root.hpp"
#include "virtio/transport/pci.hpp"

namespace qvm::virtio::testing {

struct VirtioCap {
  uint16_t at = 0;  // offset in config space
  uint8_t bar = 0;
  uint32_t offset = 0;
  uint32_t length = 0;
};

class PciGuest {
 public:
  static constexpr uint8_t kDev = 3;

  PciGuest(pci::PciRoot& root, std::shared_ptr<PciTransport> t) : root_(root), t_(std::move(t)) {
    EXPECT_TRUE(root_.add(kDev, 0, t_));
  }

  uint32_t cfg_read(uint16_t off, unsigned size) const { return root_.read(0, kDev, 0, off, size); }
  void cfg_write(uint16_t off, unsigned size, uint32_t v) { root_.write(0, kDev, 0, off, size, v); }

  // Walks the capability list (PCI 3.0 §6.7): virtio caps by cfg_type, other caps by ID.
  void walk() {
    caps_.clear();
    other_.clear();
    auto at = static_cast<uint16_t>(cfg_read(0x34, 1));
    for (int guard = 0; at != 0 && guard < 48; ++guard) {
      const auto id = static_cast<uint8_t>(cfg_read(at, 1));
      if (id == 0x09) {
        VirtioCap c;
        c.at = at;
        c.bar = static_cast<uint8_t>(cfg_read(static_cast<uint16_t>(at + 4), 1));
        c.offset = cfg_read(static_cast<uint16_t>(at + 8), 4);
        c.length = cfg_read(static_cast<uint16_t>(at + 12), 4);
        caps_[static_cast<uint8_t>(cfg_read(static_cast<uint16_t>(at + 3), 1))] = c;
      } else {
        other_[id] = at;
      }
      at = static_cast<uint16_t>(cfg_read(static_cast<uint16_t>(at + 1), 1));
    }
  }
  const std::map<uint8_t, VirtioCap>& caps() const { return caps_; }
  const std::map<uint8_t, uint16_t>& other_caps() const { return other_; }

  // Memory space + bus master on, as a driver's pci_enable_device does.
  void enable_memory() { cfg_write(0x04, 2, 0x6); }

  uint64_t bar_read(uint8_t bar, uint64_t off, size_t n) {
    uint8_t b[8] = {};
    t_->bar_device(bar)->read(off, std::span<uint8_t>(b, n));
    return bus::load_le(std::span<const uint8_t>(b, n));
  }
  void bar_write(uint8_t bar, uint64_t off, size_t n, uint64_t v) {
    uint8_t b[8] = {};
    bus::store_le(std::span<uint8_t>(b, n), v);
    t_->bar_device(bar)->write(off, std::span<const uint8_t>(b, n));
  }
  // Common configuration fields (BAR 4 + 0).
  uint64_t common(uint64_t off, size_t n) { return bar_read(PciTransport::kVirtioBar, off, n); }
  void set_common(uint64_t off, size_t n, uint64_t v) {
    bar_write(PciTransport::kVirtioBar, off, n, v);
  }

 private:
  pci::PciRoot& root_;
  std::shared_ptr<PciTransport> t_;
  std::map<uint8_t, VirtioCap> caps_;
  std::map<uint8_t, uint16_t> other_;
};

}  // namespace qvm::virtio::testing
