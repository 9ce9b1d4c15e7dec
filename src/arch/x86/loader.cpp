// Image detection, the common boot data (GDT, page tables, command line, initrd, PVH start_info)
// and the dispatch to the ELF and bzImage loaders.
#include "arch/x86/loader.hpp"

#include <algorithm>
#include <array>

#include "arch/x86/loader_internal.hpp"
#include "base/log.hpp"

namespace qvm::arch::x86 {

namespace detail {

namespace {
bool overlaps(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen) {
  return a < b + blen && b < a + alen;
}
}  // namespace

bool in_usable_ram(std::span<const E820Entry> map, uint64_t addr, uint64_t len) {
  if (addr + len < addr) return false;
  if (overlaps(addr, len, kBootAreaStart, kBootAreaEnd - kBootAreaStart)) return false;
  uint64_t at = addr;
  const uint64_t end = addr + len;
  bool progress = true;
  while (at < end && progress) {  // walk entries that cover `at` (they may be unsorted/split)
    progress = false;
    for (const auto& e : map) {
      if (e.type == E820Type::kRam && at >= e.addr && at - e.addr < e.size) {
        at = std::min(end, e.addr + e.size);
        progress = true;
      }
    }
  }
  return at >= end;
}

Status check_dest(const LoadInput& in, uint64_t addr, uint64_t len, const char* what) {
  if (in_usable_ram(in.e820, addr, len)) return {};
  return make_error(
      strprintf("%s at 0x%llx+0x%llx is not in usable guest RAM (or overlaps the "
                "boot data area 0x%llx-0x%llx)",
                what, static_cast<unsigned long long>(addr), static_cast<unsigned long long>(len),
                static_cast<unsigned long long>(kBootAreaStart),
                static_cast<unsigned long long>(kBootAreaEnd)));
}

Result<uint64_t> place_high(std::span<const E820Entry> map, uint64_t size, uint64_t floor,
                            uint64_t max_end) {
  std::optional<uint64_t> best;
  for (const auto& e : map) {
    if (e.type != E820Type::kRam || e.addr + e.size < e.addr) continue;
    uint64_t top = std::min(e.addr + e.size, max_end);
    if (top < size) continue;
    uint64_t start = (top - size) & ~uint64_t{0xfff};
    if (start < e.addr || start < floor || !in_usable_ram(map, start, size)) continue;
    if (!best || start > *best) best = start;
  }
  if (!best) return make_error("no room in guest RAM");
  return *best;
}

Status write_gdt(memory::GuestMemory& mem) {
  const std::array<uint64_t, 4> gdt{0, 0x00af9b000000ffffull, 0x00cf9b000000ffffull,
                                    0x00cf93000000ffffull};
  return mem.write_obj(kGdtAddr, gdt);
}

Result<uint64_t> write_cmdline(memory::GuestMemory& mem, std::string_view cmdline,
                               uint64_t max_len) {
  if (cmdline.size() > max_len)
    return make_error(strprintf("command line of %zu bytes is longer than the kernel's limit %llu",
                                cmdline.size(), static_cast<unsigned long long>(max_len)));
  if (cmdline.find('\0') != std::string_view::npos)
    return make_error("command line contains a NUL byte");
  std::vector<uint8_t> b(cmdline.begin(), cmdline.end());
  b.push_back(0);
  QVM_TRY(mem.write(kCmdlineAddr, b));
  return kCmdlineAddr;
}

Status load_initrd(const LoadInput& in, memory::GuestMemory& mem, uint64_t floor, uint64_t max_end,
                   BootPlan& plan) {
  if (!in.initrd) return {};
  const auto& rd = *in.initrd;
  if (rd.empty()) return make_error("initrd is empty");
  auto at = place_high(in.e820, rd.size(), floor, max_end);
  if (!at.ok())
    return make_error(
        strprintf("initrd of %zu bytes does not fit in guest RAM between 0x%llx and "
                  "0x%llx",
                  rd.size(), static_cast<unsigned long long>(floor),
                  static_cast<unsigned long long>(max_end)));
  QVM_TRY(mem.write(*at, rd));
  plan.initrd_addr = *at;
  plan.initrd_size = rd.size();
  return {};
}

namespace {

// Identity map of 0-4 GiB with 2 MiB pages: PML4 -> one PDPT -> four page directories.
Status write_page_tables(memory::GuestMemory& mem) {
  constexpr uint64_t kPdpt = kPml4Addr + 0x1000, kPd = kPml4Addr + 0x2000;
  constexpr uint64_t kPresentRw = 0x3, kLarge = 0x80;
  QVM_TRY(mem.fill(kPml4Addr, 0, 0x6000));
  QVM_TRY(mem.write_obj(kPml4Addr, kPdpt | kPresentRw));
  for (uint64_t i = 0; i < 4; i++) {
    QVM_TRY(mem.write_obj(kPdpt + 8 * i, (kPd + 0x1000 * i) | kPresentRw));
    std::array<uint64_t, 512> pd{};
    for (uint64_t j = 0; j < 512; j++) pd[j] = ((i << 30) | (j << 21)) | kPresentRw | kLarge;
    QVM_TRY(mem.write_obj(kPd + 0x1000 * i, pd));
  }
  return {};
}

// struct hvm_start_info and friends (xen/include/public/arch-x86/hvm/start_info.h), version 1.
constexpr uint32_t kHvmStartMagic = 0x336ec578;
constexpr uint64_t kModlistAddr = kStartInfoAddr + 0x40;  // one hvm_modlist_entry (32 bytes)
constexpr uint64_t kMemmapAddr = kStartInfoAddr + 0x80;   // hvm_memmap_table_entry[] (24 bytes)
constexpr size_t kMaxMemmap = (kZeroPageAddr - kMemmapAddr) / 24;

Status write_start_info(const LoadInput& in, const BootPlan& plan, memory::GuestMemory& mem) {
  if (in.e820.size() > kMaxMemmap) return make_error("too many E820 entries for hvm_start_info");
  std::vector<uint8_t> b(kZeroPageAddr - kStartInfoAddr, 0);
  auto put = [&](size_t off, uint64_t v, int n) {
    for (int i = 0; i < n; i++)
      b[off + static_cast<size_t>(i)] = static_cast<uint8_t>(v >> (8 * i));
  };
  put(0, kHvmStartMagic, 4);
  put(4, 1, 4);                          // version
  put(8, 0, 4);                          // flags
  put(12, plan.initrd_size ? 1 : 0, 4);  // nr_modules
  put(16, plan.initrd_size ? kModlistAddr : 0, 8);
  put(24, plan.cmdline_addr, 8);
  put(32, in.rsdp_addr, 8);
  put(40, kMemmapAddr, 8);
  put(48, in.e820.size(), 4);
  put(0x40, plan.initrd_addr, 8);  // modlist[0]: paddr, size, cmdline_paddr, reserved
  put(0x48, plan.initrd_size, 8);
  for (size_t i = 0; i < in.e820.size(); i++) {
    size_t off = 0x80 + 24 * i;
    put(off, in.e820[i].addr, 8);
    put(off + 8, in.e820[i].size, 8);
    put(off + 16, static_cast<uint32_t>(in.e820[i].type), 4);
  }
  return mem.write(kStartInfoAddr, b);
}

Result<BootPlan> load_elf_kernel(const LoadInput& in, memory::GuestMemory& mem) {
  ElfImage img = QVM_TRY(load_elf(in, mem));
  BootPlan plan;
  plan.entry = img.entry;
  plan.kernel_start = img.start;
  plan.kernel_end = img.end;
  if (img.pvh) {
    plan.mode = BootPlan::Mode::kPvh32;
  } else if (img.is64) {
    if (img.entry >= kIdentityMapSize)
      return make_error(
          strprintf("ELF entry 0x%llx is outside the identity-mapped first 4 GiB "
                    "(a vmlinux needs its PVH note)",
                    static_cast<unsigned long long>(img.entry)));
    plan.mode = BootPlan::Mode::kElf64;
    QVM_TRY(write_page_tables(mem));
    plan.cr3 = kPml4Addr;
  } else {
    return make_error(
        "32-bit ELF without a Xen PVH note (XEN_ELFNOTE_PHYS32_ENTRY) is not supported");
  }
  plan.cmdline_addr = QVM_TRY(write_cmdline(mem, in.cmdline, kCmdlineMax - 1));
  QVM_TRY(load_initrd(in, mem, img.end, 1ull << 32, plan));
  QVM_TRY(write_start_info(in, plan, mem));
  plan.rbx = kStartInfoAddr;
  return plan;
}

Result<BootPlan> load_raw(const LoadInput& in, memory::GuestMemory& mem) {
  if (in.image.empty()) return make_error("image is empty");
  uint64_t addr = in.load_addr.value_or(kDefaultRawAddr);
  if (addr >= (1ull << 32)) return make_error("raw image address must be below 4 GiB");
  if (addr < kGdtAddr + 0x20 && kGdtAddr < addr + in.image.size())
    return make_error("raw image overlaps the boot GDT at 0x1000-0x101f");
  QVM_TRY(mem.write(addr, in.image));
  BootPlan plan;
  plan.mode = BootPlan::Mode::kRaw;
  plan.entry = addr;
  plan.kernel_start = addr;
  plan.kernel_end = addr + in.image.size();
  return plan;
}

}  // namespace
}  // namespace detail

ImageKind detect_image(std::span<const uint8_t> image) {
  uint32_t magic = 0;
  if (detail::boots_as_multiboot(image)) return ImageKind::kMultiboot;
  if (detail::rd(image, 0, magic) && magic == 0x464c457f) return ImageKind::kElf;  // "\x7fELF"
  if (detail::rd(image, 0x202, magic) && magic == 0x53726448) return ImageKind::kBzImage;  // HdrS
  return ImageKind::kRaw;
}

const char* boot_mode_name(BootPlan::Mode m) {
  switch (m) {
    case BootPlan::Mode::kPvh32:
      return "pvh";
    case BootPlan::Mode::kLinux32:
      return "linux";
    case BootPlan::Mode::kElf64:
      return "elf64";
    case BootPlan::Mode::kMultiboot:
      return "multiboot";
    case BootPlan::Mode::kRaw:
      return "raw";
  }
  return "?";
}

Result<BootPlan> load_kernel(const LoadInput& in, memory::GuestMemory& mem) {
  BootPlan plan;
  const ImageKind kind = detect_image(in.image);
  if (!in.modules.empty() && kind != ImageKind::kMultiboot)
    return make_error("boot modules ('module load') need a multiboot image; this one is not");
  switch (kind) {
    case ImageKind::kMultiboot:
      plan = QVM_TRY(detail::load_multiboot(in, mem));
      break;
    case ImageKind::kElf:
      plan = QVM_TRY(detail::load_elf_kernel(in, mem));
      break;
    case ImageKind::kBzImage:
      plan = QVM_TRY(detail::load_bzimage(in, mem));
      break;
    case ImageKind::kRaw:
      plan = QVM_TRY(detail::load_raw(in, mem));
      break;
  }
  QVM_TRY(detail::write_gdt(mem));
  return plan;
}

}  // namespace qvm::arch::x86
