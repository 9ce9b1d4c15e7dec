// virtio over PCI, modern interface (virtio 1.2 §4.1): one virtio device as a pci::PciFunction.
//
// Identity (§4.1.2): vendor 0x1AF4, device 0x1040 + device type, revision 1, subsystem vendor
// 0x1C05 (QNX, as the QNX qvm does) and subsystem device = the PCI device id (≥ 0x40, §4.1.2.1),
// class code by device type (block 0x010000, network 0x020000, console 0x078000, other 0x00ff00),
// interrupt pin INTA#.
//
// BARs (sizes are powers of two; the machine assigns addresses):
//   BAR kVirtioBar (4, 64-bit memory, non-prefetchable: the ISR read has a side effect)
//     0x0000 common configuration (§4.1.4.3)     VIRTIO_PCI_CAP_COMMON_CFG, length 0x38
//     0x1000 ISR status (§4.1.4.5), read clears  VIRTIO_PCI_CAP_ISR_CFG, length 1
//     0x2000 device configuration (§4.1.4.6)     VIRTIO_PCI_CAP_DEVICE_CFG (only if the device
//                                                has a configuration space)
//     0x3000 notifications (§4.1.4.4)            VIRTIO_PCI_CAP_NOTIFY_CFG, multiplier 4: queue q
//                                                at 0x3000 + 4 q
//   BAR kMsixBar (2, 32-bit memory): MSI-X table (num_queues + 1 vectors) then PBA (PCI 3.0
//     §6.8.2).
// Capabilities: the five virtio_pci_cap structures (PCI_CFG = the configuration-space window to
// BAR 4, §4.1.4.9) and MSI-X.
//
// Interrupts (§4.1.5): with MSI-X enabled a queue's used-buffer notification goes to its
// queue_msix_vector and a configuration change to config_msix_vector (VIRTIO_MSI_NO_VECTOR =
// none); ISR bit 1 is set for configuration changes either way. Without MSI-X, ISR bits are set
// and INTx is asserted (IntxFn(true)) until the driver reads the ISR, which clears it
// (IntxFn(false)); Command.INTx-Disable masks the line.
//
// Guest input is untrusted: accesses of the wrong width or alignment read 0 and are ignored on
// write, as are writes to read-only fields and per-queue fields with queue_select out of range
// (queue_size reads 0 there); vectors beyond the MSI-X table read back NO_VECTOR; queue_enable
// is refused (reads 0) unless the queue's size and rings pass Queue::validate(). Messages are
// rate-limited. BAR accesses while Command.Memory is clear read all ones and are dropped.
//
// Legacy mode (PciOptions::legacy, virtio 0.9.5 = virtio 1.2 §4.1.4.8, §4.1.5 legacy parts; the
// QNX `legacy` option): a legacy-only device, not transitional in the sense of also offering the
// modern interface. Identity: transitional device ID (net 0x1000, block 0x1001, console 0x1003,
// entropy 0x1005, ...; legacy_device_id()), revision 0, subsystem device = virtio device type.
// BAR kLegacyBar (0, I/O space) holds the legacy header (pci_legacy.cpp) and the device
// configuration after it; no virtio capabilities. MSI-X stays in memory BAR kMsixBar exactly as in
// the modern transport (Linux's legacy driver uses it); while MSI-X is enabled the header grows
// by config_vector and queue_vector and the device configuration moves from 0x14 to 0x18
// (§4.1.4.8). Queues: size fixed at the maximum, rings at PFN × 4096 with the used ring aligned
// to 4096 (§2.7.2 legacy layout); PFN 0 stops the queue. One notify register for all queues
// (written with the queue index): notify_match() asks for a datamatch per queue.
//
// Not implemented: a transitional device (modern + legacy at once), VIRTIO_F_RING_RESET,
// VIRTIO_F_NOTIFICATION_DATA, shared memory capabilities, PCI Status.Interrupt-Status. A BAR the
// guest moves is reported through set_bar_hook(); following it is the machine's job. PCI_CFG reads
// are answered from a snapshot taken when the driver writes the window's bar/offset/length
// (PciFunction has no read hook); the ISR is not cleared by such a snapshot.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "base/qnx_ids.hpp"
#include "bus/bus.hpp"
#include "memory/guest_memory.hpp"
#include "pci/config_space.hpp"
#include "pci/msix.hpp"
#include "pci/pci_root.hpp"
#include "virtio/device.hpp"
#include "virtio/transport/core.hpp"

namespace qvm::virtio {

struct PciOptions {
  uint16_t subsystem_vendor = kQnxPciVendor;
  std::optional<uint32_t> class_code;  // default by device type
  bool legacy = false;                 // virtio 0.9.5 legacy interface in I/O BAR 0
};

class PciTransport final : public pci::PciFunction,
                           public std::enable_shared_from_this<PciTransport> {
 public:
  static constexpr uint16_t kVendorId = 0x1af4;
  static constexpr uint16_t kDeviceIdBase = 0x1040;
  static constexpr uint16_t kNoVector = 0xffff;  // VIRTIO_MSI_NO_VECTOR
  static constexpr uint8_t kMsixBar = 2;
  static constexpr uint8_t kVirtioBar = 4;
  static constexpr uint8_t kLegacyBar = 0;  // legacy mode: I/O space
  static constexpr uint64_t kLegacyNotifyOffset = 0x10;
  static constexpr uint32_t kLegacyPageShift = 12;  // VIRTIO_PCI_QUEUE_ADDR_SHIFT
  static constexpr uint64_t kLegacyAlign = 4096;    // VIRTIO_PCI_VRING_ALIGN
  static constexpr uint64_t kCommonOffset = 0x0000;
  static constexpr uint64_t kIsrOffset = 0x1000;
  static constexpr uint64_t kDeviceOffset = 0x2000;
  static constexpr uint64_t kNotifyOffset = 0x3000;
  static constexpr uint32_t kNotifyMultiplier = 4;
  static constexpr uint32_t kCommonLength = 0x38;

  using MsiFn = std::function<void(uint64_t addr, uint32_t data)>;
  using IntxFn = std::function<void(bool level)>;
  using QueueReadyFn = TransportCore::QueueReadyFn;

  // `msi` sends an MSI message (KVM_SIGNAL_MSI); `intx` sets the level of INTA# (KVM_IRQ_LINE or
  // an irqfd with resample). Both may be called from any thread, never with PciRoot's lock
  // required. Create with std::make_shared so bar_device() can keep the transport alive.
  PciTransport(memory::GuestMemory& mem, std::shared_ptr<VirtioDevice> dev, MsiFn msi, IntxFn intx,
               PciOptions opts = {});
  ~PciTransport() override;

  // Transitional PCI device ID of a virtio device type (§4.1.2.1 table), nullopt if it has none
  // (legacy mode is then unavailable).
  static std::optional<uint16_t> legacy_device_id(uint32_t device_type);
  bool legacy() const { return opts_.legacy; }

  // pci::PciFunction (called under PciRoot's lock).
  pci::ConfigSpace& config() override { return cfg_; }
  uint32_t config_read(uint16_t offset, unsigned size) override;
  void config_written(uint16_t offset, unsigned size) override;

  // The BARs to place: index, size, io, is64, prefetchable (set addresses with
  // config().set_bar_address() before the guest runs).
  std::vector<pci::BarInfo> bars() const { return cfg_.bars(); }
  // The bus device for BAR `index` (kMsixBar, kVirtioBar or, legacy, kLegacyBar on the port-I/O
  // bus), offsets relative to the BAR start;
  // nullptr for other indices. Keeps the transport alive if it is owned by a shared_ptr.
  std::shared_ptr<bus::BusDevice> bar_device(uint8_t index);

  // Where to register the KVM ioeventfd of `queue`: BAR + offset, `len` bytes (the driver
  // writes the 16-bit queue index). Modern: one slot per queue, no datamatch. Legacy: the shared
  // register in I/O BAR kLegacyBar, datamatch = the queue index (`io` says KVM_IOEVENTFD_FLAG_PIO).
  struct NotifyMatch {
    uint8_t bar;
    uint64_t offset;
    uint32_t len;
    bool io = false;
    std::optional<uint64_t> datamatch;
  };
  NotifyMatch notify_match(uint16_t queue) const {
    if (opts_.legacy) return {kLegacyBar, kLegacyNotifyOffset, 2, true, queue};
    return {kVirtioBar, kNotifyOffset + uint64_t{kNotifyMultiplier} * queue, 2, false, {}};
  }
  uint16_t num_queues() const { return nqueues_; }
  // A notification for `queue` (ioeventfd or retry timer): runs the device if it is active and
  // the queue ready. Any thread.
  void handle_notify(uint16_t queue);
  // Called under the transport lock when a queue becomes ready or stops being ready.
  void set_queue_ready_hook(QueueReadyFn fn);
  // Where BAR `index` decodes now: its address while Command.Memory (I/O BAR: Command.IO) is
  // set, nullopt while not.
  // Called from config_written (under PciRoot's lock: do not call into PciRoot) whenever that
  // changes, e.g. when the driver enables decoding or moves a BAR (sizing happens with decoding
  // off, so its all-ones values are never reported). Lets the machine move the bus range and
  // the notify ioeventfds of a BAR the guest reassigned.
  using BarHookFn = std::function<void(uint8_t index, std::optional<uint64_t> addr)>;
  void set_bar_hook(BarHookFn fn) { bar_hook_ = std::move(fn); }

  // For tests, dryrun, and the irqfd resample path.
  uint32_t status() const;
  uint64_t driver_features() const;
  bool activated() const;
  uint8_t isr() const { return isr_.load(); }
  bool intx_level() const;
  pci::Msix& msix() { return msix_; }
  VirtioDevice& device() { return core_.device(); }
  // SIGUSR1 status report lines (TransportCore::status_report), under the transport lock.
  std::vector<std::string> status_report() const {
    std::lock_guard lk(mu_);
    return core_.status_report();
  }

 private:
  class Interrupt;
  class BarRegion;

  // BAR kVirtioBar accesses; `peek` reads without side effects (ISR stays set).
  void bar_read(uint64_t offset, std::span<uint8_t> data, bool peek);
  void bar_write(uint64_t offset, std::span<const uint8_t> data);
  void region_read(uint8_t bar, uint64_t offset, std::span<uint8_t> data);
  void region_write(uint8_t bar, uint64_t offset, std::span<const uint8_t> data);
  std::optional<uint64_t> read_common(uint64_t offset, size_t size) const;
  void write_common(uint64_t offset, size_t size, uint64_t value);
  uint64_t common_field(uint64_t field) const;
  void set_common_field(uint64_t field, uint64_t value);
  uint16_t checked_vector(uint64_t value) const;
  void reset_locked();
  void pci_cfg_written(uint16_t offset, unsigned size);
  void check_bars();
  // Legacy header (pci_legacy.cpp).
  void legacy_read(uint64_t offset, std::span<uint8_t> data);
  void legacy_write(uint64_t offset, std::span<const uint8_t> data);
  std::optional<uint32_t> legacy_reg_read(uint64_t offset, size_t size) const;
  void legacy_reg_write(uint64_t offset, size_t size, uint32_t value);
  void write_queue_pfn(uint32_t pfn);

  // Interrupt side (any thread; no transport lock).
  void signal_used(uint16_t queue);
  void signal_config();
  void raise_isr(uint8_t bits);
  uint8_t read_isr(bool peek);
  void update_intx_locked();

  PciOptions opts_;
  pci::ConfigSpace cfg_;
  MsiFn msi_;
  IntxFn intx_;
  pci::Msix msix_;
  uint16_t nqueues_;
  uint64_t virtio_bar_size_;
  uint16_t pci_cfg_cap_ = 0;
  BarHookFn bar_hook_;
  std::optional<uint64_t> bar_decoded_[3];  // kMsixBar, kVirtioBar, kLegacyBar as last reported
  std::unique_ptr<Interrupt> interrupt_;
  std::shared_ptr<BarRegion> regions_[3];

  // Interrupt state: atomics plus intx_mu_ for the INTx level (never the transport lock, so
  // device worker threads can signal while the transport waits for them in reset()).
  std::atomic<uint8_t> isr_{0};
  std::atomic<uint16_t> config_vector_{kNoVector};
  std::unique_ptr<std::atomic<uint16_t>[]> queue_vectors_;
  std::atomic<bool> mem_enabled_{false};
  std::atomic<bool> io_enabled_{false};
  std::atomic<bool> intx_disabled_{false};
  mutable std::mutex intx_mu_;
  bool intx_level_ = false;

  mutable std::mutex mu_;
  TransportCore core_;  // after interrupt_: holds a reference to it
  uint32_t device_features_sel_ = 0;
  uint32_t driver_features_sel_ = 0;
  uint16_t queue_sel_ = 0;
  std::vector<uint32_t> legacy_pfn_;  // per queue, legacy mode; 0 = not set up
};

}  // namespace qvm::virtio
