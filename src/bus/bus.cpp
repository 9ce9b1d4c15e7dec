#include "bus/bus.hpp"

#include <algorithm>

#include "base/log.hpp"

namespace qvm::bus {

Status Bus::insert(uint64_t base, uint64_t len, std::shared_ptr<BusDevice> dev, std::string name) {
  if (len == 0 || base + len < base)
    return make_error(name_ + ": empty or wrapping range for " + name);
  for (const auto& r : ranges_) {
    if (base < r.end() && r.base < base + len)
      return make_error(strprintf(
          "%s: %s at 0x%llx-0x%llx overlaps %s at 0x%llx-0x%llx", name_.c_str(), name.c_str(),
          static_cast<unsigned long long>(base), static_cast<unsigned long long>(base + len - 1),
          r.name.c_str(), static_cast<unsigned long long>(r.base),
          static_cast<unsigned long long>(r.end() - 1)));
  }
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

bool Bus::read(uint64_t addr, std::span<uint8_t> data) const {
  const BusRange* r = find(addr, data.size());
  if (!r) return false;
  r->dev->read(addr - r->base, data);
  return true;
}

bool Bus::write(uint64_t addr, std::span<const uint8_t> data) const {
  const BusRange* r = find(addr, data.size());
  if (!r) return false;
  r->dev->write(addr - r->base, data);
  return true;
}

}  // namespace qvm::bus
