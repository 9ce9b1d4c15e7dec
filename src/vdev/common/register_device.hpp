// Adapts a byte-register state machine (read(reg) / write(reg, value)) to the bus: locks it and
// splits wider accesses into byte accesses, as ISA devices see them.
#pragma once

#include <mutex>

#include "bus/bus.hpp"

namespace qvm::vdev {

template <typename Model>
class ByteRegisterDevice final : public bus::BusDevice {
 public:
  explicit ByteRegisterDevice(Model& m, std::mutex& mu) : m_(m), mu_(mu) {}
  void read(uint64_t offset, std::span<uint8_t> data) override {
    std::lock_guard lk(mu_);
    for (size_t i = 0; i < data.size(); ++i) data[i] = m_.read(offset + i);
  }
  void write(uint64_t offset, std::span<const uint8_t> data) override {
    std::lock_guard lk(mu_);
    for (size_t i = 0; i < data.size(); ++i) m_.write(offset + i, data[i]);
  }

 private:
  Model& m_;
  std::mutex& mu_;
};

}  // namespace qvm::vdev
