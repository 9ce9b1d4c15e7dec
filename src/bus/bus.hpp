// A bus maps address ranges to devices with two methods, read and write (Firecracker's and
// rust-vmm's BusDevice model). Ranges never overlap; lookups are a binary search. Devices do
// their own locking: accesses come from any vCPU thread.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "base/result.hpp"

namespace qvm::bus {

class BusDevice {
 public:
  virtual ~BusDevice() = default;
  // `offset` is relative to the start of the range the device was inserted at. `data` is the
  // access (1, 2, 4 or 8 bytes). Reads must fill all of `data`.
  virtual void read(uint64_t offset, std::span<uint8_t> data) = 0;
  virtual void write(uint64_t offset, std::span<const uint8_t> data) = 0;
};

struct BusRange {
  uint64_t base = 0;
  uint64_t len = 0;
  std::string name;
  std::shared_ptr<BusDevice> dev;
  uint64_t end() const { return base + len; }
};

class Bus {
 public:
  explicit Bus(std::string name) : name_(std::move(name)) {}
  Status insert(uint64_t base, uint64_t len, std::shared_ptr<BusDevice> dev, std::string name);
  // False if no device claims the address (caller applies the `unsupported reference` policy).
  bool read(uint64_t addr, std::span<uint8_t> data) const;
  bool write(uint64_t addr, std::span<const uint8_t> data) const;
  const std::vector<BusRange>& ranges() const { return ranges_; }
  const std::string& name() const { return name_; }

 private:
  const BusRange* find(uint64_t addr, uint64_t len) const;
  std::string name_;
  std::vector<BusRange> ranges_;  // sorted, immutable once the VM runs
};

// Little-endian helpers for register devices.
inline uint64_t load_le(std::span<const uint8_t> d) {
  uint64_t v = 0;
  for (size_t i = d.size(); i-- > 0;) v = (v << 8) | d[i];
  return v;
}
inline void store_le(std::span<uint8_t> d, uint64_t v) {
  for (auto& b : d) {
    b = static_cast<uint8_t>(v);
    v >>= 8;
  }
}

}  // namespace qvm::bus
