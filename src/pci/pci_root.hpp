// PCI bus 0 and how the guest reaches configuration space:
//  - configuration mechanism #1 (PCI 3.0 §3.2.2.3.2): CONFIG_ADDRESS at io 0xCF8 (32-bit
//    accesses only), CONFIG_DATA at io 0xCFC-0xCFF. A byte access to 0xCF9 is not PCI but the
//    reset control register (Intel ICH), which shares the port range; it is forwarded.
//  - ECAM (PCIe 4.0 §7.2.2): a memory window, 1 MiB per bus, described to the guest by the ACPI
//    MCFG table.
// Absent functions read as all ones; writes to them are dropped.
#pragma once

#include <array>
#include <functional>
#include <memory>
#include <mutex>

#include "bus/bus.hpp"
#include "pci/config_space.hpp"

namespace qvm::pci {

// A function on the bus. The owner's config space is read and written under the root's lock;
// `config_written` lets a device react (e.g. MSI-X enable, BAR moves).
class PciFunction {
 public:
  virtual ~PciFunction() = default;
  virtual ConfigSpace& config() = 0;
  virtual void config_written(uint16_t /*offset*/, unsigned /*size*/) {}
  // A configuration read; functions with live read-only bits (Status.Interrupt) override it.
  virtual uint32_t config_read(uint16_t offset, unsigned size) {
    return config().read(offset, size);
  }
};

// The host bridge at 00:00.0 (class 0x060000).
class HostBridge final : public PciFunction {
 public:
  HostBridge();
  ConfigSpace& config() override { return cfg_; }

 private:
  ConfigSpace cfg_;
};

class PciRoot {
 public:
  PciRoot();
  // Places `fn` at 00:dev.func. Errors if taken or out of range.
  bool add(uint8_t dev, uint8_t func, std::shared_ptr<PciFunction> fn);
  bool occupied(uint8_t dev, uint8_t func) const { return fns_[dev * 8u + func] != nullptr; }
  // Config access; `offset` within the function's 4 KiB; size 1, 2 or 4.
  uint32_t read(uint8_t bus, uint8_t dev, uint8_t func, uint16_t offset, unsigned size) const;
  void write(uint8_t bus, uint8_t dev, uint8_t func, uint16_t offset, unsigned size,
             uint32_t value);

 private:
  mutable std::mutex mu_;
  std::array<std::shared_ptr<PciFunction>, 256> fns_{};
};

// io 0xCF8-0xCFF.
class PioConfigAccess final : public bus::BusDevice {
 public:
  PioConfigAccess(PciRoot& root, std::function<void(uint8_t)> reset_control_write,
                  std::function<uint8_t()> reset_control_read)
      : root_(root),
        rc_write_(std::move(reset_control_write)),
        rc_read_(std::move(reset_control_read)) {}
  void read(uint64_t offset, std::span<uint8_t> data) override;
  void write(uint64_t offset, std::span<const uint8_t> data) override;

 private:
  PciRoot& root_;
  std::function<void(uint8_t)> rc_write_;
  std::function<uint8_t()> rc_read_;
  std::mutex mu_;
  uint32_t address_ = 0;
};

// The ECAM window for buses [0, buses).
class EcamAccess final : public bus::BusDevice {
 public:
  explicit EcamAccess(PciRoot& root) : root_(root) {}
  void read(uint64_t offset, std::span<uint8_t> data) override;
  void write(uint64_t offset, std::span<const uint8_t> data) override;

 private:
  PciRoot& root_;
};

}  // namespace qvm::pci
