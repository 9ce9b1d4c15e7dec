// Shared fixtures of the x86 arch tests: a small machine layout and matching guest memory.
#pragma once

#include <cstdint>
#include <vector>

#include "arch/x86/e820.hpp"
#include "arch/x86/layout.hpp"
#include "memory/guest_memory.hpp"

namespace qvm::arch::x86::testing {

inline constexpr uint64_t kRamSize = 32ull << 20;

// 2 vCPUs, 32 MiB of RAM at 0 with the legacy hole, COM1, RTC, i8042, one virtio-mmio device.
inline MachineLayout small_layout(uint32_t cpus = 2) {
  MachineLayout l;
  l.num_cpus = cpus;
  l.ram = {{0, kRamSize}};
  l.reserved = {{0x9fc00, 0x400}, {0xa0000, 0x60000}};
  l.irq_overrides = standard_irq_overrides(true, l.sci_gsi);
  l.isa_devices = {
      {"PNP0501", 0x3f8, 8, 4}, {"PNP0B00", 0x70, 2, 8}, {"PNP0303", 0x60, 1, 1, 0x64, 1}};
  l.virtio_mmio = {{0xd0000000, 0x200, 16}};
  l.hpet_addr = 0xfed00000;
  return l;
}

inline memory::GuestMemory small_memory() {
  memory::GuestMemory m;
  if (!m.add_region(0, kRamSize, false).ok()) return {};
  return m;
}

}  // namespace qvm::arch::x86::testing
