// A PCI function's configuration space (PCI Local Bus Specification 3.0 §6.1, PCIe 4.0 §7.5):
// 4 KiB of registers with per-byte write masks, so guest writes change only what hardware lets
// them change. BARs (§6.2.5.1) are sized by their masks: writing all ones and reading back gives
// ~(size - 1) with the type bits, as drivers and firmware expect. Capabilities are chained from
// offset 0x34.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

namespace qvm::pci {

inline constexpr uint16_t kConfigSize = 4096;

struct BarInfo {
  uint8_t index = 0;
  uint64_t size = 0;  // power of two
  bool io = false;
  bool is64 = false;
  bool prefetchable = false;
  uint64_t addr = 0;  // assigned by the machine
};

class ConfigSpace {
 public:
  ConfigSpace(uint16_t vendor, uint16_t device, uint32_t class_code /* base<<16|sub<<8|prog-if */,
              uint8_t revision = 0);

  void set_subsystem(uint16_t vendor, uint16_t id);
  void set_interrupt_pin(uint8_t pin);  // 1 = INTA# ... 4 = INTD#, 0 = none
  void set_header_type(uint8_t type);   // bit 7 = multi-function
  // Declares BAR `index` (a 64-bit BAR uses index and index+1). Its address is set by the machine.
  void add_bar(const BarInfo& bar);
  void set_bar_address(uint8_t index, uint64_t addr);
  std::optional<BarInfo> bar(uint8_t index) const;
  const std::vector<BarInfo>& bars() const { return bars_; }
  // Appends a capability (`body` excludes the ID and next bytes) and returns its offset;
  // `writable` marks which bytes of the body the guest may change (same length as body, or empty).
  uint16_t add_capability(uint8_t id, std::span<const uint8_t> body,
                          std::span<const uint8_t> writable = {});

  uint32_t read(uint16_t offset, unsigned size) const;
  void write(uint16_t offset, unsigned size, uint32_t value);

  // Direct access for the owning device model (not masked).
  uint8_t raw8(uint16_t off) const { return regs_[off]; }
  uint16_t raw16(uint16_t off) const {
    return static_cast<uint16_t>(regs_[off] | (regs_[off + 1u] << 8));
  }
  uint32_t raw32(uint16_t off) const {
    return raw16(off) | (static_cast<uint32_t>(raw16(static_cast<uint16_t>(off + 2))) << 16);
  }
  void set_raw(uint16_t off, std::span<const uint8_t> bytes);
  void set_mask(uint16_t off, std::span<const uint8_t> mask);
  uint16_t command() const { return raw16(0x04); }
  bool memory_enabled() const { return command() & 0x2; }
  bool io_enabled() const { return command() & 0x1; }

 private:
  void put16(uint16_t off, uint16_t v);
  void put32(uint16_t off, uint32_t v);
  std::array<uint8_t, kConfigSize> regs_{};
  std::array<uint8_t, kConfigSize> wmask_{};
  std::vector<BarInfo> bars_;
  uint16_t next_cap_ = 0x40;
  uint16_t last_cap_ = 0;
};

}  // namespace qvm::pci
