// Time as devices see it, injected so device models never read the wall clock themselves and
// tests can step time (design §3.5).
#pragma once

#include <chrono>
#include <cstdint>
#include <ctime>

namespace qvm {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual std::chrono::nanoseconds monotonic() const = 0;
  virtual int64_t wall_seconds() const = 0;  // seconds since the Unix epoch, UTC
};

class SystemClock final : public Clock {
 public:
  std::chrono::nanoseconds monotonic() const override {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
        std::chrono::steady_clock::now().time_since_epoch());
  }
  int64_t wall_seconds() const override { return static_cast<int64_t>(std::time(nullptr)); }
};

class FakeClock final : public Clock {
 public:
  std::chrono::nanoseconds mono{0};
  int64_t wall = 0;
  std::chrono::nanoseconds monotonic() const override { return mono; }
  int64_t wall_seconds() const override { return wall; }
};

}  // namespace qvm
