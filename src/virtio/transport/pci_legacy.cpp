// The legacy (virtio 0.9.5) register block of PciTransport in legacy mode: virtio 1.2 §4.1.4.8
// "Legacy Interfaces: A Note on PCI Device Layout" and the legacy parts of §4.1.5. All fields are
// little-endian and accessed at their natural width only; anything else reads 0 and is dropped.
//
//   0x00 host features   32 RO    0x0e queue select  16 RW    with MSI-X enabled:
//   0x04 guest features  32 RW    0x10 queue notify  16 WO    0x14 config vector 16 RW
//   0x08 queue PFN       32 RW    0x12 device status  8 RW    0x16 queue vector  16 RW
//   0x0c queue size      16 RO    0x13 ISR status     8 RO (read clears)
//   device configuration at 0x14 (0x18 with MSI-X enabled)
#include <algorithm>

#include "virtio/guest_error.hpp"
#include "virtio/transport/pci.hpp"
#include "virtio/virtio_defs.hpp"

namespace qvm::virtio {
namespace {

using ull = unsigned long long;

constexpr uint64_t kHostFeatures = 0x00;
constexpr uint64_t kGuestFeatures = 0x04;
constexpr uint64_t kQueuePfn = 0x08;
constexpr uint64_t kQueueNum = 0x0c;
constexpr uint64_t kQueueSel = 0x0e;
constexpr uint64_t kQueueNotify = PciTransport::kLegacyNotifyOffset;
constexpr uint64_t kStatus = 0x12;
constexpr uint64_t kIsr = 0x13;
constexpr uint64_t kConfigVector = 0x14;
constexpr uint64_t kQueueVector = 0x16;
constexpr uint64_t kConfigOffset = 0x14;
constexpr uint64_t kConfigOffsetMsix = 0x18;

// The natural width of the register at `offset` (0: none there).
size_t reg_width(uint64_t offset, bool msix) {
  switch (offset) {
    case kHostFeatures:
    case kGuestFeatures:
    case kQueuePfn:
      return 4;
    case kQueueNum:
    case kQueueSel:
    case kQueueNotify:
      return 2;
    case kStatus:
    case kIsr:
      return 1;
    case kConfigVector:
    case kQueueVector:
      return msix ? 2 : 0;
    default:
      return 0;
  }
}

}  // namespace

std::optional<uint16_t> PciTransport::legacy_device_id(uint32_t device_type) {
  // §4.1.2.1, "Transitional PCI Device ID" table.
  switch (device_type) {
    case 1:  // network card
      return 0x1000;
    case 2:  // block device
      return 0x1001;
    case 5:  // memory ballooning (traditional)
      return 0x1002;
    case 3:  // console
      return 0x1003;
    case 8:  // SCSI host
      return 0x1004;
    case 4:  // entropy source
      return 0x1005;
    case 9:  // 9P transport
      return 0x1009;
    default:
      return std::nullopt;
  }
}

void PciTransport::legacy_read(uint64_t offset, std::span<uint8_t> data) {
  const size_t n = data.size();
  bus::store_le(data, 0);
  const bool msix = msix_.enabled();
  const uint64_t cfg_at = msix ? kConfigOffsetMsix : kConfigOffset;
  if (offset >= cfg_at) {
    std::lock_guard lk(mu_);
    (void)core_.read_config(offset - cfg_at, data);
    return;
  }
  if (reg_width(offset, msix) != n) {
    log_guest_error("virtio-pci-legacy: read 0x%llx/%zu (not a register)", static_cast<ull>(offset),
                    n);
    return;
  }
  if (offset == kIsr) {
    bus::store_le(data, read_isr(/*peek=*/false));  // §4.1.4.5: reading clears, INTx drops
    return;
  }
  std::lock_guard lk(mu_);
  if (auto v = legacy_reg_read(offset, n)) bus::store_le(data, *v);
}

std::optional<uint32_t> PciTransport::legacy_reg_read(uint64_t offset, size_t /*size*/) const {
  const Queue* q = core_.queue(queue_sel_);
  switch (offset) {
    case kHostFeatures:
      return core_.offered_features_word(0);  // legacy: 32 bits, no VERSION_1
    case kGuestFeatures:
      return static_cast<uint32_t>(core_.driver_features());
    case kQueuePfn:
      return q ? legacy_pfn_[queue_sel_] : 0;
    case kQueueNum:
      return q ? q->max_size() : 0;  // 0: the queue does not exist
    case kQueueSel:
      return queue_sel_;
    case kStatus:
      return core_.status() & 0xff;
    case kConfigVector:
      return config_vector_.load();
    case kQueueVector:
      return q ? queue_vectors_[queue_sel_].load() : kNoVector;
    default:
      log_guest_error("virtio-pci-legacy: read of write-only register 0x%llx",
                      static_cast<ull>(offset));
      return std::nullopt;
  }
}

void PciTransport::legacy_write(uint64_t offset, std::span<const uint8_t> data) {
  const size_t n = data.size();
  const auto v = static_cast<uint32_t>(bus::load_le(data));
  const bool msix = msix_.enabled();
  const uint64_t cfg_at = msix ? kConfigOffsetMsix : kConfigOffset;
  if (offset >= cfg_at) {
    std::lock_guard lk(mu_);
    (void)core_.write_config(offset - cfg_at, data);
    return;
  }
  if (reg_width(offset, msix) != n) {
    log_guest_error("virtio-pci-legacy: write 0x%x at 0x%llx/%zu (not a register) ignored", v,
                    static_cast<ull>(offset), n);
    return;
  }
  if (offset == kQueueNotify) {
    // The value is the queue index (an ioeventfd with datamatch normally catches these).
    if (v >= nqueues_) {
      log_guest_error("virtio-pci-legacy: notify of queue %u (of %u) ignored", v, nqueues_);
      return;
    }
    handle_notify(static_cast<uint16_t>(v));
    return;
  }
  std::lock_guard lk(mu_);
  legacy_reg_write(offset, n, v);
}

void PciTransport::legacy_reg_write(uint64_t offset, size_t /*size*/, uint32_t value) {
  switch (offset) {
    case kGuestFeatures:
      core_.write_driver_features_word(0, value);  // frozen once DRIVER_OK (core)
      return;
    case kQueuePfn:
      write_queue_pfn(value);
      return;
    case kQueueSel:
      queue_sel_ = static_cast<uint16_t>(value);
      return;
    case kStatus:
      if (value == 0)
        reset_locked();  // §4.1.4.8: writing 0 resets
      else
        core_.write_status(value);
      return;
    case kConfigVector:
      config_vector_.store(checked_vector(value));
      return;
    case kQueueVector:
      if (core_.queue(queue_sel_))
        queue_vectors_[queue_sel_].store(checked_vector(value));
      else
        log_guest_error("virtio-pci-legacy: queue vector written with queue select %u (of %u)",
                        queue_sel_, nqueues_);
      return;
    default:
      log_guest_error("virtio-pci-legacy: write 0x%x to read-only register 0x%llx ignored", value,
                      static_cast<ull>(offset));
      return;
  }
}

void PciTransport::write_queue_pfn(uint32_t pfn) {
  // Legacy queue layout (§2.7.2 legacy interfaces, §4.1.4.8): the size is the maximum, the
  // descriptor table at PFN × 4096, the avail ring right after it, the used ring at the next
  // 4096-byte boundary (as virtio-mmio v1 with GuestPageSize = QueueAlign = 4096).
  Queue* q = core_.queue(queue_sel_);
  if (!q) {
    log_guest_error("virtio-pci-legacy: queue PFN written with queue select %u (of %u)", queue_sel_,
                    nqueues_);
    return;
  }
  const uint16_t index = queue_sel_;
  if (pfn == 0) {
    legacy_pfn_[index] = 0;
    core_.disable_queue(index);
    return;
  }
  if (q->ready()) {
    log_guest_error("virtio-pci-legacy: PFN of active queue %u rewritten, ignored", index);
    return;
  }
  const uint64_t n = q->max_size();
  const uint64_t desc = uint64_t{pfn} << kLegacyPageShift;  // < 2^44
  const uint64_t avail = desc + 16 * n;
  const uint64_t used = (avail + 6 + 2 * n + kLegacyAlign - 1) & ~(kLegacyAlign - 1);
  q->set_size(static_cast<uint16_t>(n));
  q->set_desc_addr(desc);
  q->set_avail_addr(avail);
  q->set_used_addr(used);
  if (core_.enable_queue(index)) legacy_pfn_[index] = pfn;  // refused (logged): reads 0
}

}  // namespace qvm::virtio
