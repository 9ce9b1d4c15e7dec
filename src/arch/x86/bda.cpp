#include "arch/x86/bda.hpp"

#include <algorithm>

namespace qvm::arch::x86 {

namespace {

void put16(std::vector<uint8_t>& b, size_t off, uint16_t v) {
  b[off] = static_cast<uint8_t>(v);
  b[off + 1] = static_cast<uint8_t>(v >> 8);
}

// The end of RAM contiguous from 0 (the ranges may be split or unsorted).
uint64_t low_ram_end(const MachineLayout& layout) {
  uint64_t end = 0;
  bool progress = true;
  while (progress) {
    progress = false;
    for (const auto& r : layout.ram)
      if (r.base <= end && r.end() > end) {
        end = r.end();
        progress = true;
      }
  }
  return end;
}

}  // namespace

std::vector<uint8_t> bda_bytes(const MachineLayout& layout) {
  std::vector<uint8_t> b(kBdaSize, 0);
  uint16_t serial = 0;
  for (const auto& d : layout.isa_devices)
    if (d.hid == "PNP0501" && serial < 4) put16(b, 2u * serial++, d.io_base);
  put16(b, 0x0e, 0);  // no EBDA
  put16(b, 0x10, static_cast<uint16_t>(0x2 | (serial << 9)));
  put16(b, 0x13, static_cast<uint16_t>(std::min<uint64_t>(low_ram_end(layout), 640 * 1024) / 1024));
  return b;
}

Status build_bda(const MachineLayout& layout, memory::GuestMemory& mem) {
  if (!mem.contains(kBdaAddr, kBdaSize)) return {};
  return mem.write(kBdaAddr, bda_bytes(layout));
}

}  // namespace qvm::arch::x86
