#include "vdev/wdt_ib700/ib700.hpp"

namespace qvm::vdev {

void Ib700::write(uint64_t offset, uint8_t value) {
  if (offset == kStopOffset) {
    armed_ = false;
    arm_(std::nullopt);
  } else if (offset == kStartOffset) {
    armed_ = true;
    ++kicks_;
    timeout_ = std::chrono::seconds(kTimeouts[value & 15u]);
    arm_(timeout_);
  }
  // 0x442 is not decoded by the board.
}

bool Ib700::expire() {
  if (!armed_) return false;
  armed_ = false;
  return true;
}

}  // namespace qvm::vdev
