// virtio-console (virtio 1.2 §5.3): device id 3.
//
// Ports: port 0 always (receiveq 0, transmitq 1) and the console (Linux hvc0). With more than one
// port configured the device offers VIRTIO_CONSOLE_F_MULTIPORT (§5.3.3): control receiveq 2
// (c_ivq, device -> driver), control transmitq 3 (c_ovq, driver -> device), and port N >= 1 on
// receiveq 2N+2 / transmitq 2N+3 (§5.3.2); max_nr_ports in the configuration space says how many.
// If the driver does not accept MULTIPORT only port 0 works (§5.3.6).
//
// Control protocol (§5.3.6.2, virtio_console_control.cpp): the driver's DEVICE_READY is answered
// with DEVICE_ADD for every port; its PORT_READY for a port with CONSOLE_PORT (port 0),
// PORT_NAME (if the port has a name) and PORT_OPEN 1 (if the host side is connected); its
// PORT_OPEN records whether a guest program has the port open. Input for port N >= 1 waits in
// the port's buffer until the guest opened it (Linux discards data for closed ports). A host
// terminal resize (resize()) updates cols/rows (F_SIZE, §5.3.4) with a configuration-change
// interrupt, and with MULTIPORT also sends RESIZE for port 0.
//
// Also: VIRTIO_CONSOLE_F_EMERG_WRITE (a byte written to emerg_wr goes to port 0's output).
//
// Host side, abstracted from the backend (stdio, file, pty, socket are the machine's business):
// - guest -> host: every byte of each transmitq chain's device-readable buffers is passed to the
//   port's `output` hook, then the chain is returned with used length 0 (§5.3.6.2);
// - host -> guest: receive(bytes, port) buffers up to Options::max_buffered bytes per port (the
//   rest is refused: backpressure) and calls `kick(queue)`, which must make the transport run
//   process_queue(queue) (machine: transport->handle_notify(queue)); process_queue fills the
//   receive buffers the guest made available, and runs again when the guest adds buffers. When
//   a port's buffered input drains below the limit after having refused bytes, its `rx_space`
//   hook tells the machine to resume reading its input.
//
// Guest input is hostile: each process_queue() pass handles at most `size` chains; control
// messages shorter than 8 bytes, for ports that do not exist or with unknown events are logged
// (rate-limited) and ignored; at most kMaxPendingControl device -> driver messages wait for
// c_ivq buffers (a driver repeating DEVICE_READY cannot grow memory), a message that does not fit
// its buffer is dropped.
//
// Threading: process_queue/activate/reset run under the transport lock (device.hpp). receive()
// and resize() may be called from any thread; they touch only the buffers, the size and the
// pending control messages under the device's own lock, and never the queues. Hooks are called
// without that lock held; rx_space is called from process_queue(), under the transport lock: it
// must not call into the transport.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <span>
#include <string>
#include <vector>

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

struct Control {  // struct virtio_console_control (§5.3.6.2)
  uint32_t id;    // port number
  uint16_t event;
  uint16_t value;
};
static_assert(sizeof(Control) == 8);

// Control events (§5.3.6.2).
inline constexpr uint16_t kDeviceReady = 0;
inline constexpr uint16_t kDeviceAdd = 1;
inline constexpr uint16_t kDeviceRemove = 2;
inline constexpr uint16_t kPortReady = 3;
inline constexpr uint16_t kConsolePort = 4;
inline constexpr uint16_t kResize = 5;
inline constexpr uint16_t kPortOpen = 6;
inline constexpr uint16_t kPortName = 7;
}  // namespace console

class VirtioConsole final : public virtio::VirtioDevice {
 public:
  static constexpr uint16_t kQueueSize = 128;
  static constexpr uint16_t kReceiveQueue = 0;
  static constexpr uint16_t kTransmitQueue = 1;
  static constexpr uint16_t kControlReceiveQueue = 2;   // c_ivq (MULTIPORT)
  static constexpr uint16_t kControlTransmitQueue = 3;  // c_ovq (MULTIPORT)
  static constexpr uint32_t kMaxPorts = 16;
  static constexpr size_t kMaxPendingControl = 256;
  static constexpr size_t kMaxNameBytes = 255;

  struct Options {
    uint16_t cols = 80;
    uint16_t rows = 25;
    size_t max_buffered = 4096;  // host input held per port while the guest cannot take it
  };
  struct Port {
    std::string name;                                      // PORT_NAME (empty: none)
    std::function<void(std::span<const uint8_t>)> output;  // guest -> host bytes
    std::function<void()> rx_space;  // input buffer has room again after a refusal
    bool host_connected = true;      // PORT_OPEN 1 once the port is ready
  };
  // Port 0 only (no MULTIPORT): kick() must run process_queue(kReceiveQueue).
  struct Hooks {
    std::function<void(std::span<const uint8_t>)> output;
    std::function<void()> kick;
    std::function<void()> rx_space;
  };

  VirtioConsole(Options opts, Hooks hooks);
  // `ports`: port 0 first, at most kMaxPorts (extra ones are ignored); more than one offers
  // MULTIPORT. `kick(queue)` must make the transport run process_queue(queue).
  VirtioConsole(Options opts, std::function<void(uint16_t)> kick, std::vector<Port> ports);

  uint32_t device_type() const override;
  uint64_t device_features() const override;
  std::span<const uint16_t> queue_max_sizes() const override {
    return {queue_sizes_.data(), queue_sizes_.size()};
  }
  uint32_t config_size() const override { return sizeof(console::Config); }
  void read_config(uint32_t offset, std::span<uint8_t> data) const override;
  void write_config(uint32_t offset, std::span<const uint8_t> data) override;
  uint32_t config_generation() const override;
  Status activate(virtio::ActivationContext& ctx) override;
  void reset() override;
  void process_queue(uint16_t index) override;

  uint32_t num_ports() const { return static_cast<uint32_t>(ports_.size()); }
  static uint16_t receive_queue(uint32_t port) {
    return static_cast<uint16_t>(port == 0 ? kReceiveQueue : 2 * port + 2);
  }
  static uint16_t transmit_queue(uint32_t port) {
    return static_cast<uint16_t>(port == 0 ? kTransmitQueue : 2 * port + 3);
  }
  // Host input for the guest on `port`; returns how many bytes were taken (the rest must be
  // retried after rx_space). Any thread.
  size_t receive(std::span<const uint8_t> bytes, uint32_t port = 0);
  // Host input waiting for guest receive buffers.
  size_t buffered(uint32_t port = 0) const;
  // Whether a guest program has `port` open (PORT_OPEN; port 0 counts as open).
  bool guest_open(uint32_t port) const;
  // The host terminal changed size (e.g. SIGWINCH on a pty backend). Any thread.
  void resize(uint16_t cols, uint16_t rows);

 private:
  struct PortState {
    Port cfg;
    std::deque<uint8_t> rx;
    bool refused = false;  // receive() turned bytes away since the last rx_space
    bool ready = false;    // PORT_READY 1 seen
    bool open = false;     // PORT_OPEN 1 from the driver
  };

  void fill_receive(uint32_t port);
  void drain_transmit(uint32_t port);
  // Control queues (virtio_console_control.cpp).
  void drain_control();
  void fill_control();
  void handle_control(const console::Control& c);
  void queue_control(uint32_t id, uint16_t event, uint16_t value,
                     std::span<const uint8_t> extra = {});  // under mu_

  const Options opts_;
  std::function<void(uint16_t)> kick_;
  std::vector<uint16_t> queue_sizes_;

  // Queue state: only under the transport lock (activate/reset/process_queue).
  memory::GuestMemory* mem_ = nullptr;
  virtio::Queue* queues_ = nullptr;
  size_t num_queues_ = 0;
  bool multiport_ = false;  // negotiated

  mutable std::mutex mu_;  // everything below
  virtio::VirtioInterrupt* irq_ = nullptr;
  std::vector<PortState> ports_;
  std::deque<std::vector<uint8_t>> control_;  // device -> driver messages waiting for c_ivq
  uint16_t cols_, rows_;
  uint32_t generation_ = 0;
};

}  // namespace qvm::vdev
