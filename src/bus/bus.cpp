#include "bus/bus.hpp"

#include <algorithm>

#include "base/log.hpp"

namespace qvm::bus {

namespace {

class ScopedDevice final : public BusDevice {
 public:
  ScopedDevice(std::shared_ptr<BusDevice> dev, Logger* logger)
      : dev_(std::move(dev)), logger_(logger) {}
  void read(uint64_t offset, std::span<uint8_t> data) override {
    LogScope s(logger_);
    dev_->read(offset, data);
  }
  void write(uint64_t offset, std::span<const uint8_t> data) override {
    LogScope s(logger_);
    dev_->write(offset, data);
  }

 private:
  std::shared_ptr<BusDevice> dev_;
  Logger* logger_;
};

}  // namespace

std::shared_ptr<BusDevice> in_log_scope(std::shared_ptr<BusDevice> dev) {
  Logger* l = LogScope::active();
  if (!l || !dev) return dev;
  return std::make_shared<ScopedDevice>(std::move(dev), l);
}

Status Bus::check_free(uint64_t base, uint64_t len, const std::string& name,
                       uint64_t ignore_base) const {
  if (len == 0 || base + len < base)
    return make_error(name_ + ": empty or wrapping range for " + name);
  for (const auto& r : ranges_) {
    if (r.base == ignore_base) continue;
    if (base < r.end() && r.base < base + len)
      return make_error(strprintf(
          "%s: %s at 0x%llx-0x%llx overlaps %s at 0x%llx-0x%llx", name_.c_str(), name.c_str(),
          static_cast<unsigned long long>(base), static_cast<unsigned long long>(base + len - 1),
          r.name.c_str(), static_cast<unsigned long long>(r.base),
          static_cast<unsigned long long>(r.end() - 1)));
  }
  return {};
}

Status Bus::insert(uint64_t base, uint64_t len, std::shared_ptr<BusDevice> dev, std::string name) {
  std::unique_lock lk(mu_);
  QVM_TRY(check_free(base, len, name, UINT64_MAX));
  ranges_.push_back({base, len, std::move(name), std::move(dev)});
  std::sort(ranges_.begin(), ranges_.end(),
            [](const BusRange& a, const BusRange& b) { return a.base < b.base; });
  return {};
}

const BusRange* Bus::find(uint64_t addr, uint64_t len) const {
  auto it = std::upper_bound(ranges_.begin(), ranges_.end(), addr,
                             [](uint64_t a, const BusRange& r) { return a < r.base; });
  if (it == ranges_.begin()) return nullptr;
  --it;
  // The whole access must fall inside the device's range.
  if (addr + len < addr || addr + len > it->end()) return nullptr;
  return &*it;
}

Status Bus::move(uint64_t old_base, uint64_t new_base) {
  std::unique_lock lk(mu_);
  auto it = std::find_if(ranges_.begin(), ranges_.end(),
                         [&](const BusRange& r) { return r.base == old_base; });
  if (it == ranges_.end())
    return make_error(strprintf("%s: nothing at 0x%llx to move", name_.c_str(),
                                static_cast<unsigned long long>(old_base)));
  QVM_TRY(check_free(new_base, it->len, it->name, old_base));
  it->base = new_base;
  std::sort(ranges_.begin(), ranges_.end(),
            [](const BusRange& a, const BusRange& b) { return a.base < b.base; });
  return {};
}

Status Bus::remove(uint64_t base) {
  std::unique_lock lk(mu_);
  auto it = std::find_if(ranges_.begin(), ranges_.end(),
                         [&](const BusRange& r) { return r.base == base; });
  if (it == ranges_.end())
    return make_error(strprintf("%s: nothing at 0x%llx to remove", name_.c_str(),
                                static_cast<unsigned long long>(base)));
  ranges_.erase(it);
  return {};
}

bool Bus::read(uint64_t addr, std::span<uint8_t> data) const {
  std::shared_lock lk(mu_);
  const BusRange* r = find(addr, data.size());
  if (!r) return false;
  r->dev->read(addr - r->base, data);
  return true;
}

bool Bus::write(uint64_t addr, std::span<const uint8_t> data) const {
  std::shared_lock lk(mu_);
  const BusRange* r = find(addr, data.size());
  if (!r) return false;
  r->dev->write(addr - r->base, data);
  return true;
}

}  // namespace qvm::bus
