// The virtio device interface, independent of transports (design §3.4, virtio 1.2 §2 and §5).
// A transport (virtio-mmio, virtio-pci) owns the register state machine, the queues and the
// interrupt; it offers the device's feature bits plus its own (VIRTIO_F_VERSION_1 and the ring
// features the queue implements), and calls activate() once the driver sets DRIVER_OK.
//
// Threading: the transport serialises every call into the device (one lock per transport).
// VirtioInterrupt may be called from any thread.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "base/result.hpp"
#include "memory/guest_memory.hpp"
#include "virtio/queue/virtqueue.hpp"

namespace qvm::virtio {

// How a device tells the driver something happened; the transport sets its interrupt status
// (MMIO InterruptStatus, PCI ISR) or picks the MSI-X vector and raises it.
class VirtioInterrupt {
 public:
  virtual ~VirtioInterrupt() = default;
  // Used buffers were added to `queue` (virtio 1.2 §2.7.7.2 / §2.7.10 decide whether to call).
  virtual void signal_used(uint16_t queue) = 0;
  // The device configuration space changed (§2.5.1) or DEVICE_NEEDS_RESET was set.
  virtual void signal_config() = 0;
};

// What activate() hands the device. The struct itself is temporary (copy what you need); the
// memory, queues and interrupt it refers to stay valid until reset() returns.
struct ActivationContext {
  memory::GuestMemory& mem;
  std::span<Queue> queues;  // one per queue_max_sizes() entry; unready ones stay unready
  VirtioInterrupt& interrupt;
  uint64_t features = 0;  // the negotiated feature bits (transport bits included)
};

class VirtioDevice {
 public:
  virtual ~VirtioDevice() = default;
  // Device id (virtio 1.2 §5), e.g. kDeviceIdEntropy.
  virtual uint32_t device_type() const = 0;
  // Device-specific feature bits offered to the driver (the transport adds its own).
  virtual uint64_t device_features() const = 0;
  // Number of queues = size of the span; each entry the maximum queue size (≤ 32768, power of
  // two).
  virtual std::span<const uint16_t> queue_max_sizes() const = 0;

  // Device configuration space (§2.5). The transport has checked offset + data.size() ≤
  // config_size(); reads fill all of `data`.
  virtual uint32_t config_size() const { return 0; }
  virtual void read_config(uint32_t /*offset*/, std::span<uint8_t> data) const {
    for (auto& b : data) b = 0;
  }
  virtual void write_config(uint32_t /*offset*/, std::span<const uint8_t> /*data*/) {}
  // Bumped by the device whenever it changes its configuration space on its own (§2.5.1).
  virtual uint32_t config_generation() const { return 0; }

  // DRIVER_OK was set: start processing. An error makes the transport set DEVICE_NEEDS_RESET.
  virtual Status activate(ActivationContext& ctx) = 0;
  // The driver reset the device (status 0): drop everything taken from the ActivationContext.
  virtual void reset() = 0;
  // The driver notified queue `index` (only called while activated, index in range).
  virtual void process_queue(uint16_t index) = 0;
  // Device state for status reports (SIGUSR1, spec §8): one line, or "" for nothing to add.
  virtual std::string status_text() const { return {}; }
};

}  // namespace qvm::virtio
