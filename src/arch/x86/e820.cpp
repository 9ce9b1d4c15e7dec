#include "arch/x86/e820.hpp"

#include <algorithm>

namespace qvm::arch::x86 {

namespace {

// Merge overlapping or touching ranges.
std::vector<MemRange> normalize(std::vector<MemRange> v) {
  std::erase_if(v, [](const MemRange& r) { return r.size == 0 || r.base + r.size < r.base; });
  std::sort(v.begin(), v.end(),
            [](const MemRange& a, const MemRange& b) { return a.base < b.base; });
  std::vector<MemRange> out;
  for (const auto& r : v) {
    if (!out.empty() && r.base <= out.back().end()) {
      uint64_t end = std::max(out.back().end(), r.end());
      out.back().size = end - out.back().base;
    } else {
      out.push_back(r);
    }
  }
  return out;
}

}  // namespace

std::vector<E820Entry> e820(const MachineLayout& layout) {
  std::vector<MemRange> reserved = layout.reserved;
  reserved.push_back({layout.lapic_addr, 0x1000});
  reserved.push_back({layout.ioapic.mmio_addr, 0x1000});
  if (layout.hpet_addr) reserved.push_back({*layout.hpet_addr, 0x1000});
  if (layout.pci) reserved.push_back({layout.pci->ecam_base, layout.pci->ecam_size()});
  reserved = normalize(std::move(reserved));
  std::vector<MemRange> ram = normalize(layout.ram);

  std::vector<E820Entry> out;
  // RAM minus reserved: walk each RAM range, cutting out every reserved range it meets.
  for (const auto& r : ram) {
    uint64_t at = r.base;
    for (const auto& h : reserved) {
      if (h.end() <= at || h.base >= r.end()) continue;
      if (h.base > at) out.push_back({at, h.base - at, E820Type::kRam});
      at = std::max(at, h.end());
      if (at >= r.end()) break;
    }
    if (at < r.end()) out.push_back({at, r.end() - at, E820Type::kRam});
  }
  for (const auto& h : reserved) out.push_back({h.base, h.size, E820Type::kReserved});
  std::sort(out.begin(), out.end(),
            [](const E820Entry& a, const E820Entry& b) { return a.addr < b.addr; });
  std::vector<E820Entry> merged;
  for (const auto& e : out) {
    if (!merged.empty() && merged.back().type == e.type &&
        merged.back().addr + merged.back().size == e.addr) {
      merged.back().size += e.size;
    } else {
      merged.push_back(e);
    }
  }
  return merged;
}

}  // namespace qvm::arch::x86
