// virtio-entropy / virtio-rng (virtio 1.2 §5.4): device id 4, one request queue, no feature bits,
// no configuration space. Each available chain's device-writable buffers are filled with random
// bytes from the injected source (getrandom(2) by default) and returned with the count written
// (§5.4.6: one or more bytes, possibly less than the buffer). Device-readable buffers are ignored.
//
// Rate limit (the `rate` option): a token bucket of `rate_bytes_per_sec` bytes per second with a
// one-second burst, driven by the injected Clock. When the bucket is empty processing stops with
// the remaining chains left in the ring; retry_after() then tells the machine how long to wait
// before calling the transport's handle_notify(0) again.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>

#include "base/clock.hpp"
#include "base/result.hpp"
#include "virtio/device.hpp"

namespace qvm::vdev {

class VirtioEntropy final : public virtio::VirtioDevice {
 public:
  // Fills all of the span with random bytes.
  using Source = std::function<Status(std::span<uint8_t>)>;
  static constexpr uint16_t kQueueSize = 256;

  struct Options {
    uint64_t rate_bytes_per_sec = 0;  // 0: unlimited
  };

  // getrandom(2), non-blocking once the kernel pool is initialised.
  static Source getrandom_source();

  VirtioEntropy(const Clock& clock, Options opts, Source source = getrandom_source());

  uint32_t device_type() const override;
  uint64_t device_features() const override { return 0; }
  std::span<const uint16_t> queue_max_sizes() const override { return {&kQueueSize, 1}; }
  Status activate(virtio::ActivationContext& ctx) override;
  void reset() override;
  void process_queue(uint16_t index) override;

  // Set when the last process_queue() stopped for lack of tokens with requests still queued:
  // how long until one more byte may be produced. Cleared by the next process_queue().
  std::optional<std::chrono::nanoseconds> retry_after() const;
  uint64_t bytes_served() const { return served_; }

 private:
  void refill();

  const Clock& clock_;
  Options opts_;
  Source source_;
  memory::GuestMemory* mem_ = nullptr;
  virtio::Queue* queue_ = nullptr;
  virtio::VirtioInterrupt* irq_ = nullptr;
  double tokens_ = 0;
  std::chrono::nanoseconds last_refill_{0};
  std::atomic<int64_t> retry_ns_{-1};
  uint64_t served_ = 0;
};

}  // namespace qvm::vdev
