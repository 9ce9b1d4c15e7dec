// The transport-independent half of a virtio transport (virtio 1.2 §2.1, §2.2, §3.1): device
// status state machine, feature negotiation, the queues and their readiness, device activation
// on DRIVER_OK, reset, DEVICE_NEEDS_RESET and the device configuration space bounds. The
// virtio-mmio (§4.2) and virtio-pci (§4.1) transports own one each and map their registers
// onto it.
//
// Rules (shared by both transports):
//  - offered features = device bits | INDIRECT_DESC | EVENT_IDX | VERSION_1 (legacy: low 32 bits,
//    no VERSION_1);
//  - FEATURES_OK is refused (stays clear) for unoffered bits or, modern, without VERSION_1;
//  - DRIVER_OK without accepted features is ignored; the driver cannot clear status bits except
//    by writing 0, nor set DEVICE_NEEDS_RESET;
//  - driver features are frozen once FEATURES_OK (legacy: DRIVER_OK) is set;
//  - a queue becomes ready only if Queue::validate() accepts its size and rings.
//
// Not thread-safe: the owning transport calls everything under its own lock.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "memory/guest_memory.hpp"
#include "virtio/device.hpp"
#include "virtio/queue/virtqueue.hpp"

namespace qvm::virtio {

class TransportCore {
 public:
  // Called when queue `index` becomes ready (true) or stops being ready (false).
  using QueueReadyFn = std::function<void(uint16_t index, bool ready)>;

  // `irq` is the owner's interrupt (signal_config is used for DEVICE_NEEDS_RESET); `name`
  // prefixes log messages ("virtio-mmio", "virtio-pci") and must outlive the core.
  TransportCore(memory::GuestMemory& mem, std::shared_ptr<VirtioDevice> dev, VirtioInterrupt& irq,
                const char* name, bool legacy);
  ~TransportCore();
  TransportCore(const TransportCore&) = delete;
  TransportCore& operator=(const TransportCore&) = delete;

  VirtioDevice& device() const { return *dev_; }
  const char* name() const { return name_; }
  bool legacy() const { return legacy_; }
  uint16_t num_queues() const { return static_cast<uint16_t>(queues_.size()); }
  // nullptr when `index` is out of range (a guest-chosen selector).
  Queue* queue(uint32_t index) { return index < queues_.size() ? &queues_[index] : nullptr; }
  const Queue* queue(uint32_t index) const {
    return index < queues_.size() ? &queues_[index] : nullptr;
  }

  // Features (§2.2). `word` 0 = bits 0-31, 1 = bits 32-63; other words read 0 / are ignored.
  uint64_t offered_features() const;
  uint32_t offered_features_word(uint32_t word) const;
  uint64_t driver_features() const { return driver_features_; }
  bool features_locked() const;
  void write_driver_features_word(uint32_t word, uint32_t value);

  // Status (§2.1). write_status(0) resets (as reset()).
  uint32_t status() const { return status_; }
  void write_status(uint32_t value);
  // Back to the initial state: the device's reset() if activated, queues (ready hook called
  // with false for ready ones), status, driver features.
  void reset();
  bool activated() const { return activated_; }
  // DEVICE_NEEDS_RESET (§2.1.2), plus a configuration change interrupt if DRIVER_OK.
  void set_needs_reset();

  // Queue readiness. enable_queue() validates; false (logged) if refused.
  bool enable_queue(uint16_t index);
  void disable_queue(uint16_t index);
  void set_queue_ready_hook(QueueReadyFn fn) { ready_hook_ = std::move(fn); }

  // Runs the device for `index` if activated and the queue ready; then checks for ring
  // corruption (DEVICE_NEEDS_RESET).
  void notify(uint16_t index);

  // Device configuration space (§2.5): 1/2/4/8-byte accesses inside config_size(); false (and
  // zeros for reads) otherwise.
  bool read_config(uint64_t offset, std::span<uint8_t> data) const;
  bool write_config(uint64_t offset, std::span<const uint8_t> data);
  // Status report lines (SIGUSR1): device status and features, each queue (Queue::describe),
  // the device's own status_text().
  std::vector<std::string> status_report() const;

  // §2.5.1: changes whenever the device changed its configuration or needs a reset.
  uint32_t config_generation() const { return dev_->config_generation() + generation_; }

 private:
  void apply_ring_features(Queue& q) const;

  memory::GuestMemory& mem_;
  std::shared_ptr<VirtioDevice> dev_;
  VirtioInterrupt& irq_;
  const char* name_;
  bool legacy_;
  QueueReadyFn ready_hook_;
  std::vector<Queue> queues_;
  uint32_t status_ = 0;
  uint64_t driver_features_ = 0;
  uint32_t generation_ = 0;
  bool activated_ = false;
};

}  // namespace qvm::virtio
