#include "pci/config_space.hpp"

#include <algorithm>

namespace qvm::pci {

ConfigSpace::ConfigSpace(uint16_t vendor, uint16_t device, uint32_t class_code, uint8_t revision) {
  put16(0x00, vendor);
  put16(0x02, device);
  regs_[0x08] = revision;
  regs_[0x09] = static_cast<uint8_t>(class_code);
  regs_[0x0a] = static_cast<uint8_t>(class_code >> 8);
  regs_[0x0b] = static_cast<uint8_t>(class_code >> 16);
  // Command: I/O space, memory space, bus master, INTx disable are writable (§6.2.2).
  wmask_[0x04] = 0x07;
  wmask_[0x05] = 0x04;
  wmask_[0x0c] = 0xff;  // cache line size
  wmask_[0x0d] = 0xff;  // latency timer
  wmask_[0x3c] = 0xff;  // interrupt line: firmware/OS scratch
}

void ConfigSpace::put16(uint16_t off, uint16_t v) {
  regs_[off] = static_cast<uint8_t>(v);
  regs_[off + 1u] = static_cast<uint8_t>(v >> 8);
}

void ConfigSpace::put32(uint16_t off, uint32_t v) {
  put16(off, static_cast<uint16_t>(v));
  put16(static_cast<uint16_t>(off + 2), static_cast<uint16_t>(v >> 16));
}

void ConfigSpace::set_subsystem(uint16_t vendor, uint16_t id) {
  put16(0x2c, vendor);
  put16(0x2e, id);
}

void ConfigSpace::set_interrupt_pin(uint8_t pin) {
  regs_[0x3d] = pin;
}
void ConfigSpace::set_header_type(uint8_t type) {
  regs_[0x0e] = type;
}

void ConfigSpace::add_bar(const BarInfo& bar) {
  uint16_t off = static_cast<uint16_t>(0x10 + 4 * bar.index);
  uint64_t mask = ~(bar.size - 1);
  uint32_t low_type = bar.io ? 0x1u : ((bar.is64 ? 0x4u : 0x0u) | (bar.prefetchable ? 0x8u : 0x0u));
  put32(off, low_type);
  // Address bits above the size are writable; type bits are not (§6.2.5.1).
  uint32_t lowmask = static_cast<uint32_t>(mask) & (bar.io ? ~0x3u : ~0xfu);
  for (int i = 0; i < 4; ++i)
    wmask_[off + static_cast<unsigned>(i)] = static_cast<uint8_t>(lowmask >> (8 * i));
  if (bar.is64) {
    uint32_t highmask = static_cast<uint32_t>(mask >> 32);
    for (int i = 0; i < 4; ++i)
      wmask_[off + 4u + static_cast<unsigned>(i)] = static_cast<uint8_t>(highmask >> (8 * i));
  }
  bars_.push_back(bar);
}

void ConfigSpace::set_bar_address(uint8_t index, uint64_t addr) {
  for (auto& b : bars_) {
    if (b.index != index) continue;
    b.addr = addr;
    uint16_t off = static_cast<uint16_t>(0x10 + 4 * index);
    uint32_t type = regs_[off] & (b.io ? 0x3u : 0xfu);
    put32(off, (static_cast<uint32_t>(addr) & ~(b.io ? 0x3u : 0xfu)) | type);
    if (b.is64) put32(static_cast<uint16_t>(off + 4), static_cast<uint32_t>(addr >> 32));
  }
}

std::optional<BarInfo> ConfigSpace::bar(uint8_t index) const {
  for (const auto& b : bars_)
    if (b.index == index) {
      BarInfo cur = b;
      uint16_t off = static_cast<uint16_t>(0x10 + 4 * index);
      uint64_t a = raw32(off) & ~static_cast<uint64_t>(b.io ? 0x3u : 0xfu);
      if (b.is64) a |= static_cast<uint64_t>(raw32(static_cast<uint16_t>(off + 4))) << 32;
      cur.addr = a;
      return cur;
    }
  return std::nullopt;
}

uint16_t ConfigSpace::add_capability(uint8_t id, std::span<const uint8_t> body,
                                     std::span<const uint8_t> writable) {
  uint16_t off = next_cap_;
  regs_[off] = id;
  regs_[off + 1u] = 0;
  std::copy(body.begin(), body.end(), regs_.begin() + off + 2);
  if (!writable.empty()) std::copy(writable.begin(), writable.end(), wmask_.begin() + off + 2);
  if (last_cap_ == 0) {
    regs_[0x34] = static_cast<uint8_t>(off);
    regs_[0x06] |= 0x10;  // status: capabilities list
  } else {
    regs_[last_cap_ + 1u] = static_cast<uint8_t>(off);
  }
  last_cap_ = off;
  next_cap_ = static_cast<uint16_t>((off + 2 + body.size() + 3) & ~3u);
  return off;
}

uint32_t ConfigSpace::read(uint16_t offset, unsigned size) const {
  uint32_t v = 0;
  for (unsigned i = 0; i < size && offset + i < kConfigSize; ++i)
    v |= static_cast<uint32_t>(regs_[offset + i]) << (8 * i);
  return v;
}

void ConfigSpace::write(uint16_t offset, unsigned size, uint32_t value) {
  for (unsigned i = 0; i < size && offset + i < kConfigSize; ++i) {
    uint8_t m = wmask_[offset + i];
    uint8_t b = static_cast<uint8_t>(value >> (8 * i));
    regs_[offset + i] = static_cast<uint8_t>((regs_[offset + i] & ~m) | (b & m));
  }
}

void ConfigSpace::set_raw(uint16_t off, std::span<const uint8_t> bytes) {
  for (size_t i = 0; i < bytes.size() && off + i < kConfigSize; ++i) regs_[off + i] = bytes[i];
}

void ConfigSpace::set_mask(uint16_t off, std::span<const uint8_t> mask) {
  for (size_t i = 0; i < mask.size() && off + i < kConfigSize; ++i) wmask_[off + i] = mask[i];
}

}  // namespace qvm::pci
