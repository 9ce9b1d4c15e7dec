#include "virtio/transport/mmio.hpp"

#include "base/log.hpp"
#include "virtio/guest_error.hpp"
#include "virtio/virtio_defs.hpp"

namespace qvm::virtio {
namespace {

using ull = unsigned long long;

// Register offsets, virtio 1.2 §4.2.2 (table 4.1) and §4.2.4 (legacy).
constexpr uint64_t kMagicValue = 0x000;
constexpr uint64_t kVersion = 0x004;
constexpr uint64_t kDeviceId = 0x008;
constexpr uint64_t kVendorId = 0x00c;
constexpr uint64_t kDeviceFeatures = 0x010;
constexpr uint64_t kDeviceFeaturesSel = 0x014;
constexpr uint64_t kDriverFeatures = 0x020;
constexpr uint64_t kDriverFeaturesSel = 0x024;
constexpr uint64_t kGuestPageSize = 0x028;  // legacy
constexpr uint64_t kQueueSel = 0x030;
constexpr uint64_t kQueueNumMax = 0x034;
constexpr uint64_t kQueueNum = 0x038;
constexpr uint64_t kQueueAlign = 0x03c;  // legacy
constexpr uint64_t kQueuePfn = 0x040;    // legacy
constexpr uint64_t kQueueReady = 0x044;
constexpr uint64_t kQueueNotify = 0x050;
constexpr uint64_t kInterruptStatus = 0x060;
constexpr uint64_t kInterruptAck = 0x064;
constexpr uint64_t kStatus = 0x070;
constexpr uint64_t kQueueDescLow = 0x080;
constexpr uint64_t kQueueDescHigh = 0x084;
constexpr uint64_t kQueueDriverLow = 0x090;
constexpr uint64_t kQueueDriverHigh = 0x094;
constexpr uint64_t kQueueDeviceLow = 0x0a0;
constexpr uint64_t kQueueDeviceHigh = 0x0a4;
constexpr uint64_t kShmSel = 0x0ac;
constexpr uint64_t kShmLenLow = 0x0b0;
constexpr uint64_t kShmBaseHigh = 0x0bc;
constexpr uint64_t kConfigGeneration = 0x0fc;

constexpr uint32_t kMagic = 0x74726976;  // "virt"

uint64_t set_low(uint64_t v, uint32_t lo) {
  return (v & ~uint64_t{0xffffffff}) | lo;
}
uint64_t set_high(uint64_t v, uint32_t hi) {
  return (v & 0xffffffff) | (uint64_t{hi} << 32);
}

}  // namespace

class MmioTransport::Interrupt final : public VirtioInterrupt {
 public:
  explicit Interrupt(MmioTransport& t) : t_(t) {}
  void signal_used(uint16_t) override { t_.raise(kInterruptUsedBuffer); }
  void signal_config() override { t_.raise(kInterruptConfigChange); }

 private:
  MmioTransport& t_;
};

MmioTransport::MmioTransport(memory::GuestMemory& mem, std::shared_ptr<VirtioDevice> dev,
                             RaiseFn raise, MmioOptions opts)
    : mem_(mem),
      dev_(std::move(dev)),
      raise_(std::move(raise)),
      opts_(opts),
      interrupt_(std::make_unique<Interrupt>(*this)) {
  for (uint16_t max : dev_->queue_max_sizes()) queues_.emplace_back(max);
  queue_align_.assign(queues_.size(), 4096);
  queue_pfn_.assign(queues_.size(), 0);
}

MmioTransport::~MmioTransport() {
  std::lock_guard lk(mu_);
  if (activated_) dev_->reset();
}

void MmioTransport::set_queue_ready_hook(QueueReadyFn fn) {
  std::lock_guard lk(mu_);
  ready_hook_ = std::move(fn);
}

uint32_t MmioTransport::status() const {
  std::lock_guard lk(mu_);
  return status_;
}

uint64_t MmioTransport::driver_features() const {
  std::lock_guard lk(mu_);
  return driver_features_;
}

bool MmioTransport::activated() const {
  std::lock_guard lk(mu_);
  return activated_;
}

uint64_t MmioTransport::offered_features() const {
  // The queue implements indirect descriptors and EVENT_IDX for every device (§2.7.5.3, §2.7.10).
  uint64_t f =
      dev_->device_features() | feature_bit(kFeatureIndirectDesc) | feature_bit(kFeatureEventIdx);
  if (opts_.legacy) return f & 0xffffffff;  // legacy: 32 feature bits, no VERSION_1
  return f | feature_bit(kFeatureVersion1);
}

Queue* MmioTransport::selected() {
  return queue_sel_ < queues_.size() ? &queues_[queue_sel_] : nullptr;
}

void MmioTransport::raise(uint32_t bits) {
  isr_.fetch_or(bits);
  if (raise_) raise_();
}

void MmioTransport::read(uint64_t offset, std::span<uint8_t> data) {
  std::lock_guard lk(mu_);
  if (offset >= kConfigOffset) {
    // Device configuration space (§4.2.2): 8/16/32-bit accesses (64-bit split by most drivers).
    const uint64_t off = offset - kConfigOffset;
    const size_t n = data.size();
    if ((n == 1 || n == 2 || n == 4 || n == 8) && off + n <= dev_->config_size()) {
      dev_->read_config(static_cast<uint32_t>(off), data);
      return;
    }
    log_guest_error("virtio-mmio: config read 0x%llx/%zu out of range", static_cast<ull>(off), n);
    bus::store_le(data, 0);
    return;
  }
  if (data.size() != 4 || (offset & 3) != 0) {
    log_guest_error("virtio-mmio: %zu-byte read at 0x%llx (registers are 32-bit)", data.size(),
                    static_cast<ull>(offset));
    bus::store_le(data, 0);
    return;
  }
  bus::store_le(data, read_reg(offset));
}

void MmioTransport::write(uint64_t offset, std::span<const uint8_t> data) {
  std::lock_guard lk(mu_);
  if (offset >= kConfigOffset) {
    const uint64_t off = offset - kConfigOffset;
    const size_t n = data.size();
    if ((n == 1 || n == 2 || n == 4 || n == 8) && off + n <= dev_->config_size()) {
      dev_->write_config(static_cast<uint32_t>(off), data);
      return;
    }
    log_guest_error("virtio-mmio: config write 0x%llx/%zu out of range", static_cast<ull>(off), n);
    return;
  }
  if (data.size() != 4 || (offset & 3) != 0) {
    log_guest_error("virtio-mmio: %zu-byte write at 0x%llx ignored (registers are 32-bit)",
                    data.size(), static_cast<ull>(offset));
    return;
  }
  write_reg(offset, static_cast<uint32_t>(bus::load_le(data)));
}

uint32_t MmioTransport::read_reg(uint64_t offset) {
  const bool legacy = opts_.legacy;
  Queue* q = selected();
  switch (offset) {
    case kMagicValue:
      return kMagic;
    case kVersion:
      return legacy ? 1 : 2;
    case kDeviceId:
      return dev_->device_type();
    case kVendorId:
      return opts_.vendor_id;
    case kDeviceFeatures:
      if (device_features_sel_ > 1) return 0;
      return static_cast<uint32_t>(offered_features() >> (32 * device_features_sel_));
    case kQueueNumMax:
      return q ? q->max_size() : 0;  // 0: the queue does not exist (§4.2.3.2)
    case kInterruptStatus:
      return isr_.load();
    case kStatus:
      return status_;
    default:
      break;
  }
  if (legacy) {
    if (offset == kQueuePfn) return q ? queue_pfn_[queue_sel_] : 0;
  } else {
    switch (offset) {
      case kQueueReady:
        return q && q->ready() ? 1 : 0;
      case kQueueDescLow:
        return q ? static_cast<uint32_t>(q->desc_addr()) : 0;
      case kQueueDescHigh:
        return q ? static_cast<uint32_t>(q->desc_addr() >> 32) : 0;
      case kQueueDriverLow:
        return q ? static_cast<uint32_t>(q->avail_addr()) : 0;
      case kQueueDriverHigh:
        return q ? static_cast<uint32_t>(q->avail_addr() >> 32) : 0;
      case kQueueDeviceLow:
        return q ? static_cast<uint32_t>(q->used_addr()) : 0;
      case kQueueDeviceHigh:
        return q ? static_cast<uint32_t>(q->used_addr() >> 32) : 0;
      case kConfigGeneration:
        return dev_->config_generation() + config_generation_;
      default:
        // SHMLen/SHMBase of a region that does not exist read as all ones (§4.2.2).
        if (offset >= kShmLenLow && offset <= kShmBaseHigh) return 0xffffffff;
        break;
    }
  }
  log_guest_error("virtio-mmio: read of unknown or write-only register 0x%llx",
                  static_cast<ull>(offset));
  return 0;
}

void MmioTransport::write_reg(uint64_t offset, uint32_t value) {
  const bool legacy = opts_.legacy;
  Queue* q = selected();
  const bool features_locked = (status_ & (kStatusFeaturesOk | kStatusDriverOk)) != 0;
  switch (offset) {
    case kDeviceFeaturesSel:
      device_features_sel_ = value;
      return;
    case kDriverFeatures:
      // §2.2.2: features are fixed once FEATURES_OK (or, legacy, DRIVER_OK) is set.
      if (features_locked) {
        log_guest_error("virtio-mmio: DriverFeatures written after FEATURES_OK, ignored");
      } else if (driver_features_sel_ == 0) {
        driver_features_ = set_low(driver_features_, value);
      } else if (driver_features_sel_ == 1 && !legacy) {
        driver_features_ = set_high(driver_features_, value);
      }
      return;
    case kDriverFeaturesSel:
      driver_features_sel_ = value;
      return;
    case kQueueSel:
      queue_sel_ = value;
      return;
    case kQueueNum:
      if (q && !q->ready()) q->set_size(value > Queue::kMaxSize ? 0 : static_cast<uint16_t>(value));
      return;
    case kQueueNotify:
      if (value < queues_.size() && activated_ && queues_[value].ready()) {
        dev_->process_queue(static_cast<uint16_t>(value));
        check_queues_locked();
      }
      return;
    case kInterruptAck:
      isr_.fetch_and(~value);
      return;
    case kStatus:
      write_status(value);
      return;
    default:
      break;
  }
  if (legacy) {
    switch (offset) {
      case kGuestPageSize:
        guest_page_size_ = value;
        return;
      case kQueueAlign:
        if (q) queue_align_[queue_sel_] = value;
        return;
      case kQueuePfn:
        write_queue_pfn(value);
        return;
      default:
        break;
    }
  } else {
    const bool can_set = q && !q->ready();
    switch (offset) {
      case kQueueReady:
        write_queue_ready(value != 0);
        return;
      case kQueueDescLow:
        if (can_set) q->set_desc_addr(set_low(q->desc_addr(), value));
        return;
      case kQueueDescHigh:
        if (can_set) q->set_desc_addr(set_high(q->desc_addr(), value));
        return;
      case kQueueDriverLow:
        if (can_set) q->set_avail_addr(set_low(q->avail_addr(), value));
        return;
      case kQueueDriverHigh:
        if (can_set) q->set_avail_addr(set_high(q->avail_addr(), value));
        return;
      case kQueueDeviceLow:
        if (can_set) q->set_used_addr(set_low(q->used_addr(), value));
        return;
      case kQueueDeviceHigh:
        if (can_set) q->set_used_addr(set_high(q->used_addr(), value));
        return;
      case kShmSel:
        shm_sel_ = value;
        return;
      default:
        break;
    }
  }
  log_guest_error("virtio-mmio: write 0x%x to unknown or read-only register 0x%llx", value,
                  static_cast<ull>(offset));
}

void MmioTransport::write_queue_ready(bool ready) {
  Queue* q = selected();
  if (!q || ready == q->ready()) return;
  const auto index = static_cast<uint16_t>(queue_sel_);
  if (!ready) {
    q->set_ready(false);
    if (ready_hook_) ready_hook_(index, false);
    return;
  }
  if (auto s = q->validate(mem_); !s) {
    log_guest_error("virtio-mmio: queue %u not made ready: %s", index, s.error().message.c_str());
    return;
  }
  q->set_event_idx((driver_features_ & feature_bit(kFeatureEventIdx)) != 0);
  q->set_indirect((driver_features_ & feature_bit(kFeatureIndirectDesc)) != 0);
  q->set_ready(true);
  if (ready_hook_) ready_hook_(index, true);
}

void MmioTransport::write_queue_pfn(uint32_t pfn) {
  // Legacy queue layout (virtio 1.2 §4.2.4 and §2.7.2 legacy interfaces): descriptor table at
  // PFN * GuestPageSize, avail ring right after it, used ring at the next QueueAlign boundary.
  Queue* q = selected();
  if (!q) return;
  const auto index = static_cast<uint16_t>(queue_sel_);
  if (pfn == 0) {
    queue_pfn_[index] = 0;
    if (q->ready()) {
      q->set_ready(false);
      if (ready_hook_) ready_hook_(index, false);
    }
    return;
  }
  if (q->ready()) {
    log_guest_error("virtio-mmio: QueuePFN of active queue %u rewritten, ignored", index);
    return;
  }
  const uint32_t page = guest_page_size_;
  const uint32_t align = queue_align_[index];
  if (page == 0 || (page & (page - 1)) != 0 || align == 0 || (align & (align - 1)) != 0) {
    log_guest_error("virtio-mmio: GuestPageSize %u / QueueAlign %u not powers of two", page, align);
    return;
  }
  const uint64_t n = q->size();
  const uint64_t desc = uint64_t{pfn} * page;  // < 2^64: both factors are 32-bit
  const uint64_t avail = desc + 16 * n;
  const uint64_t used = (avail + 6 + 2 * n + align - 1) & ~(uint64_t{align} - 1);
  q->set_desc_addr(desc);
  q->set_avail_addr(avail);
  q->set_used_addr(used);
  if (auto s = q->validate(mem_); !s) {
    log_guest_error("virtio-mmio: queue %u not activated: %s", index, s.error().message.c_str());
    return;
  }
  q->set_event_idx((driver_features_ & feature_bit(kFeatureEventIdx)) != 0);
  q->set_indirect((driver_features_ & feature_bit(kFeatureIndirectDesc)) != 0);
  q->set_ready(true);
  queue_pfn_[index] = pfn;
  if (ready_hook_) ready_hook_(index, true);
}

void MmioTransport::write_status(uint32_t value) {
  // virtio 1.2 §2.1.2 / §4.2.3.1: writing 0 resets the device.
  if (value == 0) {
    reset_locked();
    return;
  }
  const uint32_t keep = status_ & kStatusDeviceNeedsReset;  // set by the device only
  value &= ~kStatusDeviceNeedsReset;
  // §2.1.1: the driver never clears a bit except by reset.
  if ((status_ & ~kStatusDeviceNeedsReset & ~value) != 0) {
    log_guest_error("virtio-mmio: status 0x%x clears bits of 0x%x, ignored", value, status_);
    return;
  }
  const uint32_t added = value & ~status_;
  if ((added & kStatusFeaturesOk) && !opts_.legacy) {
    // §3.1.1 step 5-6: only offered bits; this transport also insists on VIRTIO_F_VERSION_1.
    const uint64_t unoffered = driver_features_ & ~offered_features();
    if (unoffered != 0 || !(driver_features_ & feature_bit(kFeatureVersion1))) {
      log_guest_error("virtio-mmio: FEATURES_OK refused (features 0x%llx, not offered 0x%llx)",
                      static_cast<ull>(driver_features_), static_cast<ull>(unoffered));
      value &= ~kStatusFeaturesOk;
    }
  }
  if ((added & kStatusDriverOk) && !activated_) {
    const bool features_ok = opts_.legacy ? (driver_features_ & ~offered_features()) == 0
                                          : (value & kStatusFeaturesOk) != 0;
    if (!features_ok) {
      log_guest_error("virtio-mmio: DRIVER_OK without accepted features, ignored");
      value &= ~kStatusDriverOk;
    } else {
      for (auto& q : queues_) {
        q.set_event_idx((driver_features_ & feature_bit(kFeatureEventIdx)) != 0);
        q.set_indirect((driver_features_ & feature_bit(kFeatureIndirectDesc)) != 0);
      }
      status_ = value | keep;
      ActivationContext ctx{mem_, queues_, *interrupt_, driver_features_};
      if (auto s = dev_->activate(ctx); !s) {
        log_error("virtio-mmio: device %u failed to activate: %s", dev_->device_type(),
                  s.error().message.c_str());
        set_needs_reset_locked();
        return;
      }
      activated_ = true;
      return;
    }
  }
  status_ = value | keep;
}

void MmioTransport::reset_locked() {
  if (activated_) dev_->reset();
  activated_ = false;
  for (size_t i = 0; i < queues_.size(); ++i) {
    if (queues_[i].ready() && ready_hook_) ready_hook_(static_cast<uint16_t>(i), false);
    queues_[i].reset();
    queue_pfn_[i] = 0;
    queue_align_[i] = 4096;
  }
  status_ = 0;
  isr_.store(0);
  device_features_sel_ = driver_features_sel_ = queue_sel_ = shm_sel_ = 0;
  driver_features_ = 0;
  // guest_page_size_ survives: Linux writes it once at probe time, before the first reset.
}

void MmioTransport::set_needs_reset_locked() {
  // virtio 1.2 §2.1.2: set DEVICE_NEEDS_RESET and, if DRIVER_OK, send a config change
  // notification.
  if (status_ & kStatusDeviceNeedsReset) return;
  status_ |= kStatusDeviceNeedsReset;
  ++config_generation_;
  if (status_ & kStatusDriverOk) raise(kInterruptConfigChange);
}

void MmioTransport::check_queues_locked() {
  for (const auto& q : queues_)
    if (q.needs_reset()) {
      set_needs_reset_locked();
      return;
    }
}

void MmioTransport::handle_notify(uint16_t queue) {
  std::lock_guard lk(mu_);
  if (!activated_ || queue >= queues_.size() || !queues_[queue].ready()) return;
  dev_->process_queue(queue);
  check_queues_locked();
}

}  // namespace qvm::virtio
