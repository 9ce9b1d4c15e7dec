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
    : raise_(std::move(raise)),
      opts_(opts),
      interrupt_(std::make_unique<Interrupt>(*this)),
      core_(mem, std::move(dev), *interrupt_, "virtio-mmio", opts.legacy) {
  queue_align_.assign(core_.num_queues(), 4096);
  queue_pfn_.assign(core_.num_queues(), 0);
}

MmioTransport::~MmioTransport() = default;  // the core resets an activated device

void MmioTransport::set_queue_ready_hook(QueueReadyFn fn) {
  std::lock_guard lk(mu_);
  core_.set_queue_ready_hook(std::move(fn));
}

uint32_t MmioTransport::status() const {
  std::lock_guard lk(mu_);
  return core_.status();
}

uint64_t MmioTransport::driver_features() const {
  std::lock_guard lk(mu_);
  return core_.driver_features();
}

bool MmioTransport::activated() const {
  std::lock_guard lk(mu_);
  return core_.activated();
}

void MmioTransport::raise(uint32_t bits) {
  isr_.fetch_or(bits);
  if (raise_) raise_();
}

void MmioTransport::read(uint64_t offset, std::span<uint8_t> data) {
  std::lock_guard lk(mu_);
  if (offset >= kConfigOffset) {
    // Device configuration space (§4.2.2): 8/16/32-bit accesses (64-bit split by most drivers).
    (void)core_.read_config(offset - kConfigOffset, data);
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
    (void)core_.write_config(offset - kConfigOffset, data);
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
  const Queue* q = core_.queue(queue_sel_);
  switch (offset) {
    case kMagicValue:
      return kMagic;
    case kVersion:
      return legacy ? 1 : 2;
    case kDeviceId:
      return core_.device().device_type();
    case kVendorId:
      return opts_.vendor_id;
    case kDeviceFeatures:
      return core_.offered_features_word(device_features_sel_);
    case kQueueNumMax:
      return q ? q->max_size() : 0;  // 0: the queue does not exist (§4.2.3.2)
    case kInterruptStatus:
      return isr_.load();
    case kStatus:
      return core_.status();
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
        return core_.config_generation();
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
  Queue* q = core_.queue(queue_sel_);
  switch (offset) {
    case kDeviceFeaturesSel:
      device_features_sel_ = value;
      return;
    case kDriverFeatures:
      core_.write_driver_features_word(driver_features_sel_, value);
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
      if (value <= 0xffff) core_.notify(static_cast<uint16_t>(value));
      return;
    case kInterruptAck:
      isr_.fetch_and(~value);
      return;
    case kStatus:
      if (value == 0)
        reset_locked();  // §4.2.3.1
      else
        core_.write_status(value);
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
        if (q && value != 0)
          core_.enable_queue(static_cast<uint16_t>(queue_sel_));
        else if (q)
          core_.disable_queue(static_cast<uint16_t>(queue_sel_));
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

void MmioTransport::write_queue_pfn(uint32_t pfn) {
  // Legacy queue layout (virtio 1.2 §4.2.4 and §2.7.2 legacy interfaces): descriptor table at
  // PFN * GuestPageSize, avail ring right after it, used ring at the next QueueAlign boundary.
  Queue* q = core_.queue(queue_sel_);
  if (!q) return;
  const auto index = static_cast<uint16_t>(queue_sel_);
  if (pfn == 0) {
    queue_pfn_[index] = 0;
    core_.disable_queue(index);
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
  if (core_.enable_queue(index)) queue_pfn_[index] = pfn;
}

void MmioTransport::reset_locked() {
  core_.reset();
  for (size_t i = 0; i < queue_pfn_.size(); ++i) {
    queue_pfn_[i] = 0;
    queue_align_[i] = 4096;
  }
  isr_.store(0);
  device_features_sel_ = driver_features_sel_ = queue_sel_ = shm_sel_ = 0;
  // guest_page_size_ survives: Linux writes it once at probe time, before the first reset.
}

void MmioTransport::handle_notify(uint16_t queue) {
  std::lock_guard lk(mu_);
  core_.notify(queue);
}

}  // namespace qvm::virtio
