#include "pci/pci_root.hpp"

#include "base/qnx_ids.hpp"

namespace qvm::pci {

HostBridge::HostBridge() : cfg_(0x1b36, 0x0008, 0x060000) {
  // A generic PCIe host bridge ID (no chipset quirks in guests); subsystem: QNX's vendor ID.
  cfg_.set_subsystem(kQnxPciVendor, 0x0000);
}

PciRoot::PciRoot() {
  fns_[0] = std::make_shared<HostBridge>();
}

bool PciRoot::add(uint8_t dev, uint8_t func, std::shared_ptr<PciFunction> fn) {
  if (dev >= 32 || func >= 8) return false;
  std::lock_guard lk(mu_);
  auto& slot = fns_[dev * 8u + func];
  if (slot) return false;
  slot = std::move(fn);
  if (func > 0 && fns_[dev * 8u]) {
    // Function 0 announces a multi-function device (header type bit 7).
    auto& c = fns_[dev * 8u]->config();
    c.set_header_type(static_cast<uint8_t>(c.raw8(0x0e) | 0x80));
  }
  return true;
}

uint32_t PciRoot::read(uint8_t bus, uint8_t dev, uint8_t func, uint16_t offset,
                       unsigned size) const {
  uint32_t ones = size >= 4 ? 0xffffffffu : ((1u << (8 * size)) - 1);
  if (bus != 0 || dev >= 32 || func >= 8 || offset + size > kConfigSize) return ones;
  std::lock_guard lk(mu_);
  const auto& f = fns_[dev * 8u + func];
  return f ? f->config_read(offset, size) : ones;
}

void PciRoot::write(uint8_t bus, uint8_t dev, uint8_t func, uint16_t offset, unsigned size,
                    uint32_t value) {
  if (bus != 0 || dev >= 32 || func >= 8 || offset + size > kConfigSize) return;
  std::lock_guard lk(mu_);
  const auto& f = fns_[dev * 8u + func];
  if (!f) return;
  f->config().write(offset, size, value);
  f->config_written(offset, size);
}

void PioConfigAccess::read(uint64_t offset, std::span<uint8_t> data) {
  std::lock_guard lk(mu_);
  uint32_t v = 0xffffffff;
  if (offset == 0 && data.size() == 4) {
    v = address_;
  } else if (offset == 1 && data.size() == 1) {
    v = rc_read_ ? rc_read_() : 0;
  } else if (offset >= 4) {
    // CONFIG_DATA: only when the enable bit is set (bit 31).
    if (address_ & 0x80000000u) {
      auto bus = static_cast<uint8_t>(address_ >> 16);
      auto dev = static_cast<uint8_t>((address_ >> 11) & 0x1f);
      auto fn = static_cast<uint8_t>((address_ >> 8) & 0x7);
      auto reg = static_cast<uint16_t>((address_ & 0xfc) | (offset - 4));
      v = root_.read(bus, dev, fn, reg, static_cast<unsigned>(data.size()));
    }
  }
  bus::store_le(data, v);
}

void PioConfigAccess::write(uint64_t offset, std::span<const uint8_t> data) {
  std::lock_guard lk(mu_);
  uint32_t v = static_cast<uint32_t>(bus::load_le(data));
  if (offset == 0 && data.size() == 4) {
    address_ = v & 0x80fffffcu;
    return;
  }
  if (offset == 1 && data.size() == 1) {
    if (rc_write_) rc_write_(static_cast<uint8_t>(v));
    return;
  }
  if (offset >= 4 && (address_ & 0x80000000u)) {
    auto bus = static_cast<uint8_t>(address_ >> 16);
    auto dev = static_cast<uint8_t>((address_ >> 11) & 0x1f);
    auto fn = static_cast<uint8_t>((address_ >> 8) & 0x7);
    auto reg = static_cast<uint16_t>(((address_ & 0xfc) | (offset - 4)) & 0xff);
    root_.write(bus, dev, fn, reg, static_cast<unsigned>(data.size()), v);
  }
}

void EcamAccess::read(uint64_t offset, std::span<uint8_t> data) {
  auto bus = static_cast<uint8_t>(offset >> 20);
  auto dev = static_cast<uint8_t>((offset >> 15) & 0x1f);
  auto fn = static_cast<uint8_t>((offset >> 12) & 0x7);
  auto reg = static_cast<uint16_t>(offset & 0xfff);
  uint32_t v = data.size() <= 4 && (reg % data.size()) == 0
                   ? root_.read(bus, dev, fn, reg, static_cast<unsigned>(data.size()))
                   : 0xffffffffu;
  bus::store_le(data, v);
}

void EcamAccess::write(uint64_t offset, std::span<const uint8_t> data) {
  auto bus = static_cast<uint8_t>(offset >> 20);
  auto dev = static_cast<uint8_t>((offset >> 15) & 0x1f);
  auto fn = static_cast<uint8_t>((offset >> 12) & 0x7);
  auto reg = static_cast<uint16_t>(offset & 0xfff);
  if (data.size() > 4 || (reg % data.size()) != 0) return;  // unaligned or 8-byte: dropped
  root_.write(bus, dev, fn, reg, static_cast<unsigned>(data.size()),
              static_cast<uint32_t>(bus::load_le(data)));
}

}  // namespace qvm::pci
