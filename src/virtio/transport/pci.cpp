#include "virtio/transport/pci.hpp"

#include <algorithm>
#include <bit>

#include "virtio/guest_error.hpp"
#include "virtio/virtio_defs.hpp"

namespace qvm::virtio {
namespace {

using ull = unsigned long long;

// struct virtio_pci_common_cfg (virtio 1.2 §4.1.4.3).
constexpr uint64_t kDeviceFeatureSelect = 0x00;
constexpr uint64_t kDeviceFeature = 0x04;
constexpr uint64_t kDriverFeatureSelect = 0x08;
constexpr uint64_t kDriverFeature = 0x0c;
constexpr uint64_t kConfigMsixVector = 0x10;
constexpr uint64_t kNumQueues = 0x12;
constexpr uint64_t kDeviceStatus = 0x14;
constexpr uint64_t kConfigGeneration = 0x15;
constexpr uint64_t kQueueSelect = 0x16;
constexpr uint64_t kQueueSize = 0x18;
constexpr uint64_t kQueueMsixVector = 0x1a;
constexpr uint64_t kQueueEnable = 0x1c;
constexpr uint64_t kQueueNotifyOff = 0x1e;
constexpr uint64_t kQueueDesc = 0x20;
constexpr uint64_t kQueueDriver = 0x28;
constexpr uint64_t kQueueDevice = 0x30;
constexpr uint64_t kQueueNotifyData = 0x38;
constexpr uint64_t kQueueReset = 0x3a;

struct Field {
  uint64_t off;
  size_t width;
};
constexpr Field kFields[] = {
    {kDeviceFeatureSelect, 4}, {kDeviceFeature, 4},    {kDriverFeatureSelect, 4},
    {kDriverFeature, 4},       {kConfigMsixVector, 2}, {kNumQueues, 2},
    {kDeviceStatus, 1},        {kConfigGeneration, 1}, {kQueueSelect, 2},
    {kQueueSize, 2},           {kQueueMsixVector, 2},  {kQueueEnable, 2},
    {kQueueNotifyOff, 2},      {kQueueDesc, 8},        {kQueueDriver, 8},
    {kQueueDevice, 8},         {kQueueNotifyData, 2},  {kQueueReset, 2},
};

// The field an access of `size` bytes at `offset` may touch (§4.1.3.1: natural width; 64-bit
// fields also as two 32-bit halves).
const Field* field_for(uint64_t offset, size_t size) {
  for (const auto& f : kFields) {
    if (offset == f.off && size == f.width) return &f;
    if (f.width == 8 && size == 4 && (offset == f.off || offset == f.off + 4)) return &f;
  }
  return nullptr;
}

// virtio_pci_cap cfg_type (§4.1.4).
constexpr uint8_t kCapCommon = 1;
constexpr uint8_t kCapNotify = 2;
constexpr uint8_t kCapIsr = 3;
constexpr uint8_t kCapDevice = 4;
constexpr uint8_t kCapPci = 5;
constexpr uint8_t kCapVendor = 0x09;  // PCI vendor-specific capability ID

// The body of a virtio_pci_cap after cap_vndr and cap_next: cap_len, cfg_type, bar, id,
// padding[2], offset, length, then `extra` bytes (notify_off_multiplier or pci_cfg_data).
std::vector<uint8_t> cap_body(uint8_t type, uint8_t bar, uint32_t offset, uint32_t length,
                              size_t extra = 0, uint32_t extra_value = 0) {
  std::vector<uint8_t> b(14 + extra, 0);
  b[0] = static_cast<uint8_t>(16 + extra);
  b[1] = type;
  b[2] = bar;
  for (int i = 0; i < 4; ++i) {
    b[6 + static_cast<size_t>(i)] = static_cast<uint8_t>(offset >> (8 * i));
    b[10 + static_cast<size_t>(i)] = static_cast<uint8_t>(length >> (8 * i));
  }
  for (size_t i = 0; i < extra; ++i) b[14 + i] = static_cast<uint8_t>(extra_value >> (8 * i));
  return b;
}

uint32_t default_class(uint32_t type) {
  switch (type) {
    case kDeviceIdBlock:
      return 0x010000;  // mass storage, SCSI (as QEMU's virtio-blk-pci)
    case kDeviceIdNet:
      return 0x020000;  // network, Ethernet
    case kDeviceIdConsole:
      return 0x078000;  // communication, other
    default:
      return 0x00ff00;  // unclassified, other (QEMU's PCI_CLASS_OTHERS)
  }
}

uint16_t pci_device_id(const VirtioDevice& dev, bool legacy) {
  if (legacy) {
    // The machine refuses types without a transitional ID; anything else gets an ID in the
    // transitional range that no driver binds to.
    return PciTransport::legacy_device_id(dev.device_type()).value_or(0x103f);
  }
  return static_cast<uint16_t>(PciTransport::kDeviceIdBase + (dev.device_type() & 0xff));
}

// Legacy I/O BAR size: the 24-byte header (with the MSI-X vectors) + the device configuration.
uint64_t legacy_bar_size(const VirtioDevice& dev) {
  return std::bit_ceil(std::max<uint64_t>(0x18 + uint64_t{dev.config_size()}, 0x20));
}

uint16_t vector_count(const VirtioDevice& dev) {
  const size_t n = dev.queue_max_sizes().size() + 1;  // one per queue + configuration changes
  return static_cast<uint16_t>(std::min<size_t>(n, pci::Msix::kMaxVectors));
}

}  // namespace

class PciTransport::Interrupt final : public VirtioInterrupt {
 public:
  explicit Interrupt(PciTransport& t) : t_(t) {}
  void signal_used(uint16_t queue) override { t_.signal_used(queue); }
  void signal_config() override { t_.signal_config(); }

 private:
  PciTransport& t_;
};

class PciTransport::BarRegion final : public bus::BusDevice {
 public:
  BarRegion(PciTransport& t, uint8_t bar) : t_(t), bar_(bar) {}
  void read(uint64_t offset, std::span<uint8_t> data) override {
    t_.region_read(bar_, offset, data);
  }
  void write(uint64_t offset, std::span<const uint8_t> data) override {
    t_.region_write(bar_, offset, data);
  }

 private:
  PciTransport& t_;
  uint8_t bar_;
};

PciTransport::PciTransport(memory::GuestMemory& mem, std::shared_ptr<VirtioDevice> dev, MsiFn msi,
                           IntxFn intx, PciOptions opts)
    : opts_(opts),
      cfg_(kVendorId, pci_device_id(*dev, opts.legacy),
           opts.class_code.value_or(default_class(dev->device_type())),
           /*revision=*/opts.legacy ? 0 : 1),
      msi_(std::move(msi)),
      intx_(std::move(intx)),
      msix_(cfg_, pci::Msix::packed(vector_count(*dev), kMsixBar),
            [this](uint64_t addr, uint32_t data) {
              if (msi_) msi_(addr, data);
            }),
      nqueues_(static_cast<uint16_t>(std::min<size_t>(dev->queue_max_sizes().size(), 0xffff))),
      interrupt_(std::make_unique<Interrupt>(*this)),
      queue_vectors_(std::make_unique<std::atomic<uint16_t>[]>(nqueues_ + 1u)),
      core_(mem, dev, *interrupt_, opts.legacy ? "virtio-pci-legacy" : "virtio-pci", opts.legacy) {
  cfg_.set_interrupt_pin(1);  // INTA#
  for (uint32_t i = 0; i <= nqueues_; ++i) queue_vectors_[i].store(kNoVector);
  regions_[0] = std::make_shared<BarRegion>(*this, kMsixBar);
  const uint64_t msix_size =
      std::bit_ceil(std::max<uint64_t>(pci::Msix::packed_size(msix_.vectors()), 0x1000));
  if (opts_.legacy) {
    // §4.1.2.1 legacy: subsystem device ID = virtio device type; I/O BAR 0, no virtio caps.
    cfg_.set_subsystem(opts_.subsystem_vendor, static_cast<uint16_t>(dev->device_type()));
    legacy_pfn_.assign(nqueues_, 0);
    virtio_bar_size_ = legacy_bar_size(*dev);
    cfg_.add_bar({kLegacyBar, virtio_bar_size_, true, false, false, 0});
    cfg_.add_bar({kMsixBar, msix_size, false, false, false, 0});
    regions_[2] = std::make_shared<BarRegion>(*this, kLegacyBar);
    return;
  }
  cfg_.set_subsystem(opts_.subsystem_vendor, pci_device_id(*dev, false));

  // BAR 4: 64-bit memory; the notify area grows with the queue count (4 bytes per queue).
  const uint64_t notify_len = std::max<uint64_t>(uint64_t{kNotifyMultiplier} * nqueues_, 4);
  virtio_bar_size_ = std::bit_ceil(std::max<uint64_t>(kNotifyOffset + notify_len, 0x4000));
  cfg_.add_bar({kVirtioBar, virtio_bar_size_, false, true, false, 0});
  cfg_.add_bar({kMsixBar, msix_size, false, false, false, 0});

  auto add = [this](const std::vector<uint8_t>& body, const std::vector<uint8_t>& writable) {
    return cfg_.add_capability(kCapVendor, body, writable);
  };
  add(cap_body(kCapCommon, kVirtioBar, kCommonOffset, kCommonLength), {});
  add(cap_body(kCapNotify, kVirtioBar, kNotifyOffset, static_cast<uint32_t>(notify_len), 4,
               kNotifyMultiplier),
      {});
  add(cap_body(kCapIsr, kVirtioBar, kIsrOffset, 1), {});
  if (uint32_t n = dev->config_size(); n > 0)
    add(cap_body(kCapDevice, kVirtioBar, kDeviceOffset, std::min<uint32_t>(n, 0x1000)), {});
  // PCI_CFG (§4.1.4.9): bar, offset, length and pci_cfg_data are writable by the driver.
  std::vector<uint8_t> w(18, 0);
  w[2] = 0xff;                                     // bar
  std::fill(w.begin() + 6, w.begin() + 18, 0xff);  // offset, length, data
  pci_cfg_cap_ = add(cap_body(kCapPci, 0, 0, 0, 4, 0), w);
  regions_[1] = std::make_shared<BarRegion>(*this, kVirtioBar);
}

PciTransport::~PciTransport() = default;  // the core resets an activated device

std::shared_ptr<bus::BusDevice> PciTransport::bar_device(uint8_t index) {
  BarRegion* r = index == kMsixBar                      ? regions_[0].get()
                 : index == kVirtioBar && !opts_.legacy ? regions_[1].get()
                 : index == kLegacyBar && opts_.legacy  ? regions_[2].get()
                                                        : nullptr;
  if (!r) return nullptr;
  // Aliasing: the region lives as long as the transport, so share the transport's ownership
  // (empty owner when the transport is not held by a shared_ptr: tests).
  return std::shared_ptr<bus::BusDevice>(weak_from_this().lock(), r);
}

void PciTransport::set_queue_ready_hook(QueueReadyFn fn) {
  std::lock_guard lk(mu_);
  core_.set_queue_ready_hook(std::move(fn));
}

uint32_t PciTransport::status() const {
  std::lock_guard lk(mu_);
  return core_.status();
}

uint64_t PciTransport::driver_features() const {
  std::lock_guard lk(mu_);
  return core_.driver_features();
}

bool PciTransport::activated() const {
  std::lock_guard lk(mu_);
  return core_.activated();
}

bool PciTransport::intx_level() const {
  std::lock_guard lk(intx_mu_);
  return intx_level_;
}

void PciTransport::handle_notify(uint16_t queue) {
  std::lock_guard lk(mu_);
  core_.notify(queue);
}

// ---- configuration space ----

uint32_t PciTransport::config_read(uint16_t offset, unsigned size) {
  uint32_t v = cfg_.read(offset, size);
  // PCI 3.0 §6.2.3: Status bit 3 (Interrupt Status) shows a pending INTx whether or not
  // Command.InterruptDisable masks it; pending = ISR set with MSI-X off (virtio 1.2 §4.1.5.3).
  if (offset <= 0x06 && offset + size > 0x06) {
    std::lock_guard lk(intx_mu_);
    if (isr_.load() != 0 && !msix_.enabled()) v |= 0x08u << (8 * (0x06 - offset));
  }
  return v;
}

void PciTransport::config_written(uint16_t offset, unsigned size) {
  if (offset < 0x06 && offset + size > 0x04) {
    const uint16_t cmd = cfg_.command();
    mem_enabled_.store((cmd & 0x2) != 0);
    io_enabled_.store((cmd & 0x1) != 0);
    intx_disabled_.store((cmd & 0x400) != 0);
  }
  msix_.config_written(offset, size);  // MSI-X Enable / Function Mask
  {
    std::lock_guard lk(intx_mu_);
    update_intx_locked();
  }
  if (offset < 0x28 && offset + size > 0x04) check_bars();  // command or a BAR
  if (pci_cfg_cap_ != 0 && offset < pci_cfg_cap_ + 20 && offset + size > pci_cfg_cap_)
    pci_cfg_written(offset, size);
}

void PciTransport::check_bars() {
  const uint8_t index[3] = {kMsixBar, kVirtioBar, kLegacyBar};
  for (size_t i = 0; i < 3; ++i) {
    if (!regions_[i]) continue;
    const bool decode = i == 2 ? io_enabled_.load() : mem_enabled_.load();
    std::optional<uint64_t> now;
    if (decode) now = cfg_.bar(index[i])->addr;
    if (now == bar_decoded_[i]) continue;
    bar_decoded_[i] = now;
    if (bar_hook_) bar_hook_(index[i], now);
  }
}

void PciTransport::pci_cfg_written(uint16_t offset, unsigned size) {
  // struct virtio_pci_cfg_cap (§4.1.4.9): cap.bar at +4, cap.offset at +8, cap.length at +12,
  // pci_cfg_data at +16.
  const auto cap = pci_cfg_cap_;
  const uint8_t bar = cfg_.raw8(static_cast<uint16_t>(cap + 4));
  const uint32_t off = cfg_.raw32(static_cast<uint16_t>(cap + 8));
  const uint32_t len = cfg_.raw32(static_cast<uint16_t>(cap + 12));
  const auto data_at = static_cast<uint16_t>(cap + 16);
  const bool valid = bar == kVirtioBar && (len == 1 || len == 2 || len == 4) && off % len == 0 &&
                     off < virtio_bar_size_;
  if (offset + size > data_at) {
    // The driver wrote pci_cfg_data: write its first cap.length bytes to the BAR.
    if (!valid) {
      log_guest_error("virtio-pci: PCI_CFG write with bar %u offset 0x%x length %u ignored", bar,
                      off, len);
      return;
    }
    uint8_t bytes[4];
    for (unsigned i = 0; i < 4; ++i) bytes[i] = cfg_.raw8(static_cast<uint16_t>(data_at + i));
    bar_write(off, std::span<const uint8_t>(bytes, len));
    return;
  }
  // The driver (re)aimed the window: answer the coming read of pci_cfg_data now.
  uint8_t bytes[4] = {};
  if (valid) bar_read(off, std::span<uint8_t>(bytes, len), /*peek=*/true);
  cfg_.set_raw(data_at, bytes);
}

// ---- BAR accesses ----

void PciTransport::region_read(uint8_t bar, uint64_t offset, std::span<uint8_t> data) {
  if (opts_.legacy && bar == kLegacyBar) {
    if (io_enabled_.load()) {
      legacy_read(offset, data);
    } else {
      log_guest_error("virtio-pci: I/O BAR read with I/O decoding disabled");
      bus::store_le(data, ~uint64_t{0});
    }
    return;
  }
  if (!mem_enabled_.load()) {
    log_guest_error("virtio-pci: BAR %u read with memory decoding disabled", bar);
    bus::store_le(data, ~uint64_t{0});
    return;
  }
  if (bar == kMsixBar)
    msix_.read(offset, data);
  else
    bar_read(offset, data, /*peek=*/false);
}

void PciTransport::region_write(uint8_t bar, uint64_t offset, std::span<const uint8_t> data) {
  if (opts_.legacy && bar == kLegacyBar) {
    if (io_enabled_.load())
      legacy_write(offset, data);
    else
      log_guest_error("virtio-pci: I/O BAR write with I/O decoding disabled, dropped");
    return;
  }
  if (!mem_enabled_.load()) {
    log_guest_error("virtio-pci: BAR %u write with memory decoding disabled, dropped", bar);
    return;
  }
  if (bar == kMsixBar)
    msix_.write(offset, data);
  else
    bar_write(offset, data);
}

void PciTransport::bar_read(uint64_t offset, std::span<uint8_t> data, bool peek) {
  const size_t n = data.size();
  bus::store_le(data, 0);
  if (offset >= kNotifyOffset) return;  // notify area: write-only, reads 0
  if (offset >= kDeviceOffset) {
    std::lock_guard lk(mu_);
    (void)core_.read_config(offset - kDeviceOffset, data);
    return;
  }
  if (offset >= kIsrOffset) {
    if (offset == kIsrOffset && n <= 4) bus::store_le(data, read_isr(peek));
    return;
  }
  std::lock_guard lk(mu_);
  if (auto v = read_common(offset, n)) bus::store_le(data, *v);
}

void PciTransport::bar_write(uint64_t offset, std::span<const uint8_t> data) {
  const size_t n = data.size();
  const uint64_t v = bus::load_le(data);
  if (offset >= kNotifyOffset) {
    const uint64_t rel = offset - kNotifyOffset;
    const uint64_t q = rel / kNotifyMultiplier;
    if (rel % kNotifyMultiplier != 0 || n > 4 || q >= nqueues_) {
      log_guest_error("virtio-pci: notify write at 0x%llx/%zu ignored", static_cast<ull>(offset),
                      n);
      return;
    }
    handle_notify(static_cast<uint16_t>(q));  // the value (queue index) adds nothing
    return;
  }
  std::lock_guard lk(mu_);
  if (offset >= kDeviceOffset) {
    (void)core_.write_config(offset - kDeviceOffset, data);
    return;
  }
  if (offset >= kIsrOffset) {
    log_guest_error("virtio-pci: write to the read-only ISR area at 0x%llx ignored",
                    static_cast<ull>(offset));
    return;
  }
  write_common(offset, n, v);
}

// ---- common configuration (§4.1.4.3) ----

std::optional<uint64_t> PciTransport::read_common(uint64_t offset, size_t size) const {
  const Field* f = field_for(offset, size);
  if (!f) {
    log_guest_error("virtio-pci: common config read 0x%llx/%zu (not a field)",
                    static_cast<ull>(offset), size);
    return std::nullopt;
  }
  uint64_t v = common_field(f->off) >> (8 * (offset - f->off));
  if (size < 8) v &= (uint64_t{1} << (8 * size)) - 1;
  return v;
}

uint64_t PciTransport::common_field(uint64_t field) const {
  const Queue* q = core_.queue(queue_sel_);
  switch (field) {
    case kDeviceFeatureSelect:
      return device_features_sel_;
    case kDeviceFeature:
      return core_.offered_features_word(device_features_sel_);
    case kDriverFeatureSelect:
      return driver_features_sel_;
    case kDriverFeature:
      return driver_features_sel_ < 2
                 ? static_cast<uint32_t>(core_.driver_features() >> (32 * driver_features_sel_))
                 : 0;
    case kConfigMsixVector:
      return config_vector_.load();
    case kNumQueues:
      return nqueues_;
    case kDeviceStatus:
      return core_.status() & 0xff;
    case kConfigGeneration:
      return core_.config_generation() & 0xff;
    case kQueueSelect:
      return queue_sel_;
    default:
      break;
  }
  if (!q) return field == kQueueMsixVector ? kNoVector : 0;  // §4.1.4.3.2: queue_size 0
  switch (field) {
    case kQueueSize:
      return q->size();
    case kQueueMsixVector:
      return queue_vectors_[queue_sel_].load();
    case kQueueEnable:
      return q->ready() ? 1 : 0;
    case kQueueNotifyOff:
      return queue_sel_;  // × kNotifyMultiplier
    case kQueueDesc:
      return q->desc_addr();
    case kQueueDriver:
      return q->avail_addr();
    case kQueueDevice:
      return q->used_addr();
    default:
      return 0;  // queue_notify_data, queue_reset: features not offered
  }
}

void PciTransport::write_common(uint64_t offset, size_t size, uint64_t value) {
  const Field* f = field_for(offset, size);
  if (!f) {
    log_guest_error("virtio-pci: common config write 0x%llx/%zu (not a field) ignored",
                    static_cast<ull>(offset), size);
    return;
  }
  if (f->width == 8 && size == 4) {
    // One half of a 64-bit field: merge with the other half.
    const uint64_t cur = common_field(f->off);
    value = offset == f->off ? (cur & ~uint64_t{0xffffffff}) | (value & 0xffffffff)
                             : (cur & 0xffffffff) | (value << 32);
  }
  set_common_field(f->off, value);
}

uint16_t PciTransport::checked_vector(uint64_t value) const {
  // §4.1.5.1.2: a vector the device cannot map reads back as NO_VECTOR.
  if (value != kNoVector && value >= msix_.vectors()) {
    log_guest_error("virtio-pci: MSI-X vector %llu beyond the table (%u), NO_VECTOR",
                    static_cast<ull>(value), msix_.vectors());
    return kNoVector;
  }
  return static_cast<uint16_t>(value);
}

void PciTransport::set_common_field(uint64_t field, uint64_t value) {
  const auto v32 = static_cast<uint32_t>(value);
  switch (field) {
    case kDeviceFeatureSelect:
      device_features_sel_ = v32;
      return;
    case kDriverFeatureSelect:
      driver_features_sel_ = v32;
      return;
    case kDriverFeature:
      core_.write_driver_features_word(driver_features_sel_, v32);
      return;
    case kConfigMsixVector:
      config_vector_.store(checked_vector(value));
      return;
    case kDeviceStatus:
      if (value == 0)
        reset_locked();  // §4.1.4.3.2: 0 resets; reads 0 once done
      else
        core_.write_status(v32 & 0xff);
      return;
    case kQueueSelect:
      queue_sel_ = static_cast<uint16_t>(value);
      return;
    case kDeviceFeature:
    case kNumQueues:
    case kConfigGeneration:
    case kQueueNotifyOff:
    case kQueueNotifyData:
      log_guest_error("virtio-pci: write 0x%llx to read-only field 0x%llx ignored",
                      static_cast<ull>(value), static_cast<ull>(field));
      return;
    default:
      break;
  }
  Queue* q = core_.queue(queue_sel_);
  if (!q) {
    log_guest_error("virtio-pci: queue field 0x%llx written with queue_select %u (of %u)",
                    static_cast<ull>(field), queue_sel_, nqueues_);
    return;
  }
  if (field == kQueueMsixVector) {
    queue_vectors_[queue_sel_].store(checked_vector(value));
    return;
  }
  if (field == kQueueEnable) {
    // §4.1.4.3.2: the driver MUST NOT write 0 (no VIRTIO_F_RING_RESET); 1 enables.
    if (value == 1)
      (void)core_.enable_queue(queue_sel_);
    else
      log_guest_error("virtio-pci: queue_enable %llu for queue %u ignored", static_cast<ull>(value),
                      queue_sel_);
    return;
  }
  if (field == kQueueReset) {
    log_guest_error("virtio-pci: queue_reset written (VIRTIO_F_RING_RESET not offered)");
    return;
  }
  if (q->ready()) {
    log_guest_error("virtio-pci: field 0x%llx of enabled queue %u written, ignored",
                    static_cast<ull>(field), queue_sel_);
    return;
  }
  switch (field) {
    case kQueueSize:
      q->set_size(value > Queue::kMaxSize ? 0 : static_cast<uint16_t>(value));
      return;
    case kQueueDesc:
      q->set_desc_addr(value);
      return;
    case kQueueDriver:
      q->set_avail_addr(value);
      return;
    case kQueueDevice:
      q->set_used_addr(value);
      return;
    default:
      return;
  }
}

void PciTransport::reset_locked() {
  core_.reset();
  device_features_sel_ = driver_features_sel_ = 0;
  queue_sel_ = 0;
  std::fill(legacy_pfn_.begin(), legacy_pfn_.end(), 0);
  config_vector_.store(kNoVector);
  for (uint32_t i = 0; i <= nqueues_; ++i) queue_vectors_[i].store(kNoVector);
  std::lock_guard lk(intx_mu_);
  isr_.store(0);
  update_intx_locked();
}

// ---- interrupts (§4.1.5) ----

void PciTransport::signal_used(uint16_t queue) {
  if (msix_.enabled()) {
    const uint16_t v = queue < nqueues_ ? queue_vectors_[queue].load() : kNoVector;
    if (v != kNoVector) msix_.notify(v);
    return;
  }
  raise_isr(static_cast<uint8_t>(kInterruptUsedBuffer));
}

void PciTransport::signal_config() {
  if (msix_.enabled()) {
    isr_.fetch_or(static_cast<uint8_t>(kInterruptConfigChange));  // §4.1.4.5: set either way
    const uint16_t v = config_vector_.load();
    if (v != kNoVector) msix_.notify(v);
    return;
  }
  raise_isr(static_cast<uint8_t>(kInterruptConfigChange));
}

void PciTransport::raise_isr(uint8_t bits) {
  std::lock_guard lk(intx_mu_);
  isr_.fetch_or(bits);
  update_intx_locked();
}

uint8_t PciTransport::read_isr(bool peek) {
  std::lock_guard lk(intx_mu_);
  if (peek) return isr_.load();
  const uint8_t v = isr_.exchange(0);  // §4.1.4.5: reading clears
  update_intx_locked();
  return v;
}

void PciTransport::update_intx_locked() {
  // INTx follows the ISR unless MSI-X is enabled or Command.INTx-Disable is set (§4.1.4.5,
  // PCI 3.0 §6.2.2).
  const bool level = isr_.load() != 0 && !intx_disabled_.load() && !msix_.enabled();
  if (level == intx_level_) return;
  intx_level_ = level;
  if (intx_) intx_(level);
}

}  // namespace qvm::virtio
