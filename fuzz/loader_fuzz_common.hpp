// Shared harness of the kernel-loader fuzz targets (elf_loader, bzimage_loader,
// multiboot_loader).
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "arch/x86/e820.hpp"
#include "arch/x86/loader.hpp"

namespace qvm::fuzz {

// `modules`: boot modules instead of an initrd (the multiboot target).
inline void run_loader(const uint8_t* data, size_t size, bool modules = false) {
  using namespace qvm::arch::x86;
  constexpr uint64_t kMem = 4ull << 20;
  static memory::GuestMemory* mem = [] {
    auto* m = new memory::GuestMemory();
    if (!m->add_region(0, kMem, false).ok()) abort();
    return m;
  }();
  MachineLayout layout;
  layout.ram = {{0, kMem}};
  layout.reserved = {{0x9fc00, 0x100000 - 0x9fc00}};
  std::vector<E820Entry> map = e820(layout);
  static const std::vector<uint8_t> initrd(0x2000, 0x5a);
  LoadInput in;
  in.image = std::span<const uint8_t>(data, size);
  static const std::vector<uint8_t> m0(0x1800, 0x11), m1(3, 0x22);
  static const std::vector<BootModule> mods{{m0, "m0 a=1"}, {m1, "m1"}};
  if (modules) {
    in.modules = mods;
  } else {
    in.initrd = initrd;
  }
  in.cmdline = "console=ttyS0";
  in.rsdp_addr = 0xe0000;
  in.e820 = map;
  auto plan = load_kernel(in, *mem);
  if (!plan.ok()) return;
  if (plan->mode != BootPlan::Mode::kRaw &&
      (!mem->contains(plan->kernel_start, plan->kernel_end - plan->kernel_start) ||
       plan->kernel_end < plan->kernel_start)) {
    fprintf(stderr, "kernel outside guest memory\n");
    abort();
  }
  if (modules && plan->mode == BootPlan::Mode::kMultiboot &&
      (plan->initrd_addr < plan->kernel_end || plan->rax != kBootloaderMagic)) {
    fprintf(stderr, "module below the image's end or no multiboot magic\n");
    abort();
  }
  if (plan->initrd_size != 0 && !mem->contains(plan->initrd_addr, plan->initrd_size)) {
    fprintf(stderr, "initrd outside guest memory\n");
    abort();
  }
}

}  // namespace qvm::fuzz
