#include "virtio/transport/core.hpp"

#include "base/log.hpp"
#include "virtio/guest_error.hpp"
#include "virtio/virtio_defs.hpp"

namespace qvm::virtio {
namespace {
using ull = unsigned long long;
}  // namespace

TransportCore::TransportCore(memory::GuestMemory& mem, std::shared_ptr<VirtioDevice> dev,
                             VirtioInterrupt& irq, const char* name, bool legacy)
    : mem_(mem), dev_(std::move(dev)), irq_(irq), name_(name), legacy_(legacy) {
  for (uint16_t max : dev_->queue_max_sizes()) queues_.emplace_back(max);
}

TransportCore::~TransportCore() {
  if (activated_) dev_->reset();
}

uint64_t TransportCore::offered_features() const {
  // The queue implements indirect descriptors and EVENT_IDX for every device (§2.7.5.3, §2.7.10).
  uint64_t f =
      dev_->device_features() | feature_bit(kFeatureIndirectDesc) | feature_bit(kFeatureEventIdx);
  if (legacy_) return f & 0xffffffff;  // legacy: 32 feature bits, no VERSION_1
  return f | feature_bit(kFeatureVersion1);
}

uint32_t TransportCore::offered_features_word(uint32_t word) const {
  if (word > 1) return 0;
  return static_cast<uint32_t>(offered_features() >> (32 * word));
}

bool TransportCore::features_locked() const {
  return (status_ & (kStatusFeaturesOk | kStatusDriverOk)) != 0;
}

void TransportCore::write_driver_features_word(uint32_t word, uint32_t value) {
  // §2.2.2: features are fixed once FEATURES_OK (or, legacy, DRIVER_OK) is set.
  if (features_locked()) {
    log_guest_error("%s: driver features written after FEATURES_OK, ignored", name_);
  } else if (word == 0) {
    driver_features_ = (driver_features_ & ~uint64_t{0xffffffff}) | value;
  } else if (word == 1 && !legacy_) {
    driver_features_ = (driver_features_ & 0xffffffff) | (uint64_t{value} << 32);
  } else {
    log_guest_error("%s: driver feature word %u does not exist, write ignored", name_, word);
  }
}

void TransportCore::apply_ring_features(Queue& q) const {
  q.set_event_idx((driver_features_ & feature_bit(kFeatureEventIdx)) != 0);
  q.set_indirect((driver_features_ & feature_bit(kFeatureIndirectDesc)) != 0);
}

void TransportCore::write_status(uint32_t value) {
  // §2.1.2: writing 0 resets the device.
  if (value == 0) {
    reset();
    return;
  }
  const uint32_t keep = status_ & kStatusDeviceNeedsReset;  // set by the device only
  value &= ~kStatusDeviceNeedsReset;
  // §2.1.1: the driver never clears a bit except by reset.
  if ((status_ & ~kStatusDeviceNeedsReset & ~value) != 0) {
    log_guest_error("%s: status 0x%x clears bits of 0x%x, ignored", name_, value, status_);
    return;
  }
  const uint32_t added = value & ~status_;
  if ((added & kStatusFeaturesOk) && !legacy_) {
    // §3.1.1 steps 5-6: only offered bits; modern transports also insist on VIRTIO_F_VERSION_1.
    const uint64_t unoffered = driver_features_ & ~offered_features();
    if (unoffered != 0 || !(driver_features_ & feature_bit(kFeatureVersion1))) {
      log_guest_error("%s: FEATURES_OK refused (features 0x%llx, not offered 0x%llx)", name_,
                      static_cast<ull>(driver_features_), static_cast<ull>(unoffered));
      value &= ~kStatusFeaturesOk;
    }
  }
  if ((added & kStatusDriverOk) && !activated_) {
    const bool features_ok =
        legacy_ ? (driver_features_ & ~offered_features()) == 0 : (value & kStatusFeaturesOk) != 0;
    if (!features_ok) {
      log_guest_error("%s: DRIVER_OK without accepted features, ignored", name_);
      value &= ~kStatusDriverOk;
    } else {
      for (auto& q : queues_) apply_ring_features(q);
      status_ = value | keep;
      ActivationContext ctx{mem_, queues_, irq_, driver_features_};
      if (auto s = dev_->activate(ctx); !s) {
        log_error("%s: device %u failed to activate: %s", name_, dev_->device_type(),
                  s.error().message.c_str());
        set_needs_reset();
        return;
      }
      activated_ = true;
      return;
    }
  }
  status_ = value | keep;
}

void TransportCore::reset() {
  if (activated_) dev_->reset();
  activated_ = false;
  for (size_t i = 0; i < queues_.size(); ++i) {
    if (queues_[i].ready() && ready_hook_) ready_hook_(static_cast<uint16_t>(i), false);
    queues_[i].reset();
  }
  status_ = 0;
  driver_features_ = 0;
}

void TransportCore::set_needs_reset() {
  // §2.1.2: set DEVICE_NEEDS_RESET and, if DRIVER_OK, send a configuration change notification.
  if (status_ & kStatusDeviceNeedsReset) return;
  status_ |= kStatusDeviceNeedsReset;
  ++generation_;
  if (status_ & kStatusDriverOk) irq_.signal_config();
}

bool TransportCore::enable_queue(uint16_t index) {
  Queue* q = queue(index);
  if (!q) return false;
  if (q->ready()) return true;
  if (auto s = q->validate(mem_); !s) {
    log_guest_error("%s: queue %u not made ready: %s", name_, index, s.error().message.c_str());
    return false;
  }
  apply_ring_features(*q);
  q->set_ready(true);
  if (ready_hook_) ready_hook_(index, true);
  return true;
}

void TransportCore::disable_queue(uint16_t index) {
  Queue* q = queue(index);
  if (!q || !q->ready()) return;
  q->set_ready(false);
  if (ready_hook_) ready_hook_(index, false);
}

void TransportCore::notify(uint16_t index) {
  if (!activated_ || index >= queues_.size() || !queues_[index].ready()) return;
  dev_->process_queue(index);
  for (const auto& q : queues_)
    if (q.needs_reset()) {
      set_needs_reset();
      return;
    }
}

bool TransportCore::read_config(uint64_t offset, std::span<uint8_t> data) const {
  const size_t n = data.size();
  if ((n == 1 || n == 2 || n == 4 || n == 8) && offset <= dev_->config_size() &&
      n <= dev_->config_size() - offset) {
    dev_->read_config(static_cast<uint32_t>(offset), data);
    return true;
  }
  log_guest_error("%s: config read 0x%llx/%zu out of range", name_, static_cast<ull>(offset), n);
  for (auto& b : data) b = 0;
  return false;
}

bool TransportCore::write_config(uint64_t offset, std::span<const uint8_t> data) {
  const size_t n = data.size();
  if ((n == 1 || n == 2 || n == 4 || n == 8) && offset <= dev_->config_size() &&
      n <= dev_->config_size() - offset) {
    dev_->write_config(static_cast<uint32_t>(offset), data);
    return true;
  }
  log_guest_error("%s: config write 0x%llx/%zu out of range", name_, static_cast<ull>(offset), n);
  return false;
}

std::vector<std::string> TransportCore::status_report() const {
  static const struct {
    uint32_t bit;
    const char* name;
  } kBits[] = {{kStatusAcknowledge, "ACKNOWLEDGE"},
               {kStatusDriver, "DRIVER"},
               {kStatusFeaturesOk, "FEATURES_OK"},
               {kStatusDriverOk, "DRIVER_OK"},
               {kStatusDeviceNeedsReset, "DEVICE_NEEDS_RESET"},
               {kStatusFailed, "FAILED"}};
  std::string st = strprintf("status 0x%02x", status_);
  for (const auto& b : kBits)
    if (status_ & b.bit) st += std::string(" ") + b.name;
  st += strprintf(", features 0x%llx", static_cast<ull>(driver_features_));
  std::vector<std::string> out{st};
  if (!activated_) return out;
  for (size_t i = 0; i < queues_.size(); ++i)
    if (queues_[i].ready()) out.push_back(strprintf("queue %zu: ", i) + queues_[i].describe(mem_));
  if (std::string d = dev_->status_text(); !d.empty()) out.push_back(std::move(d));
  return out;
}

}  // namespace qvm::virtio
