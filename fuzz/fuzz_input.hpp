// Shared harness of the fuzz targets (the virtio devices virtio_blk, virtio_console,
// virtio_net_tx; the register streams uart16550, mc146818, i8042, pci_config): a byte reader over
// the fuzzer's input, a virtio interrupt sink, and the abort that reports a violated property to
// libFuzzer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "virtio/device.hpp"

namespace qvm::fuzz {

inline void check(bool ok) {
  if (!ok) std::abort();
}

struct NullInterrupt final : virtio::VirtioInterrupt {
  void signal_used(uint16_t) override {}
  void signal_config() override {}
};

// Reads little-endian values; past the end every read is 0, so a short input is still a run.
class Input {
 public:
  Input(const uint8_t* d, size_t n) : d_(d), n_(n) {}
  bool empty() const { return i_ >= n_; }
  uint8_t u8() { return i_ < n_ ? d_[i_++] : 0; }
  uint16_t u16() { return static_cast<uint16_t>(u8() | (u8() << 8)); }
  uint32_t u32() { return static_cast<uint32_t>(u16() | (uint32_t{u16()} << 16)); }
  uint64_t u64() { return u32() | (uint64_t{u32()} << 32); }
  std::vector<uint8_t> bytes(size_t n) {
    std::vector<uint8_t> v;
    while (v.size() < n && !empty()) v.push_back(u8());
    return v;
  }

 private:
  const uint8_t* d_;
  size_t n_;
  size_t i_ = 0;
};

}  // namespace qvm::fuzz
