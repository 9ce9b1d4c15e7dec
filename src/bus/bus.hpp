// A bus maps address ranges to devices with two methods, read and write (Firecracker's and
// rust-vmm's BusDevice model). Ranges never overlap; lookups are a binary search. Devices do
// their own locking: accesses come from any vCPU thread.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <shared_mutex>
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

// `dev` with its accesses run in the log scope active now (base/log.hpp LogScope: a vdev's own
// `log` routing); `dev` itself when no scope is active, so devices without one pay nothing.
std::shared_ptr<BusDevice> in_log_scope(std::shared_ptr<BusDevice> dev);

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
  // Moves the range that starts at `old_base` (a PCI BAR the guest reprogrammed). Must not be
  // called from inside a device access on this bus (accesses hold the bus lock shared).
  Status move(uint64_t old_base, uint64_t new_base);
  // Removes the range that starts at `base` (same rule as move: not from inside an access).
  Status remove(uint64_t base);
  // False if no device claims the address (caller applies the `unsupported reference` policy).
  bool read(uint64_t addr, std::span<uint8_t> data) const;
  bool write(uint64_t addr, std::span<const uint8_t> data) const;
  std::vector<BusRange> ranges() const {
    std::shared_lock lk(mu_);
    return ranges_;
  }
  const std::string& name() const { return name_; }

 private:
  const BusRange* find(uint64_t addr, uint64_t len) const;
  Status check_free(uint64_t base, uint64_t len, const std::string& name,
                    uint64_t ignore_base) const;
  std::string name_;
  // Sorted. Accesses take the lock shared (cheap next to an exit); insert/move take it exclusively.
  mutable std::shared_mutex mu_;
  std::vector<BusRange> ranges_;
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
