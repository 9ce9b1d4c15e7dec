// virtio-console (virtio 1.2 §5.3): device id 3, one port (port 0: receiveq 0, transmitq 1).
//
// Implemented: VIRTIO_CONSOLE_F_SIZE (cols/rows in the configuration space, 80x25 by default,
// resize() changes them and raises a configuration-change interrupt, §5.3.6), and
// VIRTIO_CONSOLE_F_EMERG_WRITE (a byte written to emerg_wr goes straight to the output, §5.3.4).
// Not implemented: VIRTIO_CONSOLE_F_MULTIPORT (control queues, more ports, port names).
//
// Host side, abstracted from the backend (stdio, file, pty, socket are the machine's business):
// - guest -> host: every byte of each transmitq chain's device-readable buffers is passed to the
//   `output` hook, then the chain is returned with used length 0 (§5.3.6.2);
// - host -> guest: receive(bytes) buffers up to Options::max_buffered bytes (the rest is refused:
//   backpressure, like the 16550 model) and calls the `kick` hook, which must make the transport
//   run process_queue(0) (machine: transport->handle_notify(0)); process_queue(0) fills the
//   receiveq buffers the guest made available, and runs again when the guest adds buffers
//   (it notifies queue 0). When buffered input drains below the limit after having refused
//   bytes, the `rx_space` hook tells the machine to resume reading its input (re-arm EPOLLIN).
//
// Threading: process_queue/activate/reset run under the transport lock (device.hpp). receive()
// and resize() may be called from any thread; they touch only the input buffer and the size
// under the device's own lock, and never the queues. Hooks are called without that lock held;
// rx_space is called from process_queue(), under the transport lock: it must not call into the
// transport.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <span>

#include "base/result.hpp"
#include "virtio/device.hpp"

namespace qvm::vdev {

namespace console {
inline constexpr uint32_t kFeatureSize = 0;        // VIRTIO_CONSOLE_F_SIZE
inline constexpr uint32_t kFeatureMultiport = 1;   // VIRTIO_CONSOLE_F_MULTIPORT
inline constexpr uint32_t kFeatureEmergWrite = 2;  // VIRTIO_CONSOLE_F_EMERG_WRITE

struct Config {  // struct virtio_console_config (§5.3.4)
  uint16_t cols;
  uint16_t rows;
  uint32_t max_nr_ports;
  uint32_t emerg_wr;
};
static_assert(sizeof(Config) == 12);
}  // namespace console

class VirtioConsole final : public virtio::VirtioDevice {
 public:
  static constexpr uint16_t kQueueSize = 128;
  static constexpr uint16_t kReceiveQueue = 0;
  static constexpr uint16_t kTransmitQueue = 1;

  struct Options {
    uint16_t cols = 80;
    uint16_t rows = 25;
    size_t max_buffered = 4096;  // host input held while the guest has no receive buffers
  };
  struct Hooks {
    std::function<void(std::span<const uint8_t>)> output;  // guest -> host bytes
    std::function<void()> kick;      // host input buffered: run process_queue(0) via the transport
    std::function<void()> rx_space;  // input buffer has room again after a refusal
  };

  VirtioConsole(Options opts, Hooks hooks);

  uint32_t device_type() const override;
  uint64_t device_features() const override;
  std::span<const uint16_t> queue_max_sizes() const override { return kQueueSizes; }
  uint32_t config_size() const override { return sizeof(console::Config); }
  void read_config(uint32_t offset, std::span<uint8_t> data) const override;
  void write_config(uint32_t offset, std::span<const uint8_t> data) override;
  uint32_t config_generation() const override;
  Status activate(virtio::ActivationContext& ctx) override;
  void reset() override;
  void process_queue(uint16_t index) override;

  // Host input for the guest; returns how many bytes were taken (the rest must be retried after
  // rx_space). Any thread.
  size_t receive(std::span<const uint8_t> bytes);
  // Host input waiting for guest receive buffers.
  size_t buffered() const;
  // The host terminal changed size (e.g. SIGWINCH on a pty backend). Any thread.
  void resize(uint16_t cols, uint16_t rows);

 private:
  void fill_receive();
  void drain_transmit();

  static constexpr uint16_t kQueueSizes[2] = {kQueueSize, kQueueSize};
  const Options opts_;
  Hooks hooks_;

  // Queue state: only under the transport lock (activate/reset/process_queue).
  memory::GuestMemory* mem_ = nullptr;
  virtio::Queue* queues_ = nullptr;

  mutable std::mutex mu_;  // everything below
  virtio::VirtioInterrupt* irq_ = nullptr;
  std::deque<uint8_t> rx_;
  bool refused_ = false;  // receive() turned bytes away since the last rx_space
  uint16_t cols_, rows_;
  uint32_t generation_ = 0;
};

}  // namespace qvm::vdev
