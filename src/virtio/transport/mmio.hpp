// virtio over MMIO (virtio 1.2 §4.2): the register block of one device as a bus::BusDevice.
// Version 2 (§4.2.2, "modern") by default; version 1 (§4.2.4, "legacy", the `legacy` option)
// with GuestPageSize / QueueAlign / QueuePFN instead of QueueReady and 64-bit ring addresses.
//
// Implemented: device status state machine (reset on 0, FEATURES_OK refused for features not
// offered or, in version 2, without VIRTIO_F_VERSION_1), 64-bit feature negotiation,
// per-queue setup registers, QueueNotify, InterruptStatus/InterruptACK, ConfigGeneration,
// device configuration space at 0x100 (1/2/4/8-byte accesses), SHMSel (no shared memory
// regions: length reads ~0). Control registers take 32-bit aligned accesses only; other sizes
// read as 0 and are ignored on write (logged, rate-limited).
// Not implemented: VIRTIO_F_RING_RESET (QueueReset), shared memory regions, packed rings.
//
// Wiring (see docs/virtio.md): the region is kRegionSize bytes. The interrupt is an edge: the
// `raise` hook is called each time an InterruptStatus bit is set (machine: write the irqfd
// eventfd). Queue notifications: register a KVM ioeventfd at base + kNotifyOffset, 4 bytes,
// datamatch = queue index, for each queue, and call handle_notify(queue) when it fires.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "base/qnx_ids.hpp"
#include "bus/bus.hpp"
#include "memory/guest_memory.hpp"
#include "virtio/device.hpp"
#include "virtio/queue/virtqueue.hpp"
#include "virtio/transport/core.hpp"

namespace qvm::virtio {

struct MmioOptions {
  bool legacy = false;                 // register layout version 1 (§4.2.4)
  uint32_t vendor_id = kQnxPciVendor;  // VendorID register
};

class MmioTransport final : public bus::BusDevice {
 public:
  static constexpr uint64_t kRegionSize = 0x200;
  static constexpr uint64_t kNotifyOffset = 0x50;  // QueueNotify
  static constexpr uint64_t kConfigOffset = 0x100;

  using RaiseFn = std::function<void()>;
  // Called (under the transport lock: do not call back into the transport) when queue `index`
  // becomes ready (true) or stops being ready (false: QueueReady 0, QueuePFN 0, or reset).
  using QueueReadyFn = TransportCore::QueueReadyFn;

  MmioTransport(memory::GuestMemory& mem, std::shared_ptr<VirtioDevice> dev, RaiseFn raise,
                MmioOptions opts = {});
  ~MmioTransport() override;

  void read(uint64_t offset, std::span<uint8_t> data) override;
  void write(uint64_t offset, std::span<const uint8_t> data) override;

  // A notification for `queue` arrived through an ioeventfd (or a retry timer): runs the device's
  // process_queue if the device is active and the queue ready. Any thread.
  void handle_notify(uint16_t queue);
  void set_queue_ready_hook(QueueReadyFn fn);

  uint16_t num_queues() const { return core_.num_queues(); }
  // The ioeventfd to register for `queue`: address offset and datamatch value (4-byte write).
  struct NotifyMatch {
    uint64_t offset;
    uint32_t value;
  };
  NotifyMatch notify_match(uint16_t queue) const { return {kNotifyOffset, queue}; }

  // For tests, dryrun and diagnostics.
  uint32_t status() const;
  uint32_t interrupt_status() const { return isr_.load(); }
  uint64_t driver_features() const;
  bool activated() const;
  VirtioDevice& device() { return core_.device(); }
  // SIGUSR1 status report lines (TransportCore::status_report), under the transport lock.
  std::vector<std::string> status_report() const {
    std::lock_guard lk(mu_);
    return core_.status_report();
  }

 private:
  class Interrupt;
  uint32_t read_reg(uint64_t offset);
  void write_reg(uint64_t offset, uint32_t value);
  void write_queue_pfn(uint32_t pfn);
  void reset_locked();
  void raise(uint32_t bits);

  RaiseFn raise_;
  MmioOptions opts_;
  std::unique_ptr<Interrupt> interrupt_;

  mutable std::mutex mu_;
  TransportCore core_;  // after interrupt_: holds a reference to it
  std::atomic<uint32_t> isr_{0};
  uint32_t device_features_sel_ = 0;
  uint32_t driver_features_sel_ = 0;
  uint32_t queue_sel_ = 0;
  uint32_t shm_sel_ = 0;
  // Legacy (§4.2.4) state.
  uint32_t guest_page_size_ = 0;
  std::vector<uint32_t> queue_align_;
  std::vector<uint32_t> queue_pfn_;
};

}  // namespace qvm::virtio
