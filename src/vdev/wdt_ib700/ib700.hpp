// The IB700 single-board-computer watchdog (spec §6.2, §8.4), as Linux's ib700wdt driver and
// QEMU's model use it: two write-only ports. A write to the first (0x441) stops the timer; a
// write of N to the third (0x443) (re)arms it with kTimeouts[N & 15] seconds. Reads return all
// ones (nothing to read on the real board). A pure state machine: the owner runs the timer and
// calls expire() when it fires.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>

namespace qvm::vdev {

class Ib700 {
 public:
  static constexpr uint64_t kPorts = 3;        // 0x441-0x443
  static constexpr uint64_t kStopOffset = 0;   // 0x441
  static constexpr uint64_t kStartOffset = 2;  // 0x443
  // Seconds per index (the board's table; Linux ib700wdt wd_times[]).
  static constexpr std::array<uint8_t, 16> kTimeouts = {30, 28, 26, 24, 22, 20, 18, 16,
                                                        14, 12, 10, 8,  6,  4,  2,  0};

  // `arm(t)` (re)starts the owner's one-shot timer to fire after t; `arm(nullopt)` stops it.
  explicit Ib700(std::function<void(std::optional<std::chrono::seconds>)> arm)
      : arm_(std::move(arm)) {}

  uint8_t read(uint64_t /*offset*/) const { return 0xff; }
  void write(uint64_t offset, uint8_t value);
  // The owner's timer fired: the guest stopped kicking. True if the watchdog was armed (the
  // action is due); a stale expiry after a stop returns false.
  bool expire();

  bool armed() const { return armed_; }
  std::chrono::seconds timeout() const { return timeout_; }
  uint64_t kicks() const { return kicks_; }

 private:
  std::function<void(std::optional<std::chrono::seconds>)> arm_;
  bool armed_ = false;
  std::chrono::seconds timeout_{0};
  uint64_t kicks_ = 0;
};

}  // namespace qvm::vdev
