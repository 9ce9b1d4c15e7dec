// Multiboot v1 loading (Multiboot Specification 0.6.96, "OS image format" and "Boot information
// format"), the format QNX Neutrino x86 IFS images (multiboot startup) and Xen use. The header is
// searched in the image's first 8 KiB; with flag 16 (the "a.out kludge") its address fields say
// where the file's bytes go, otherwise the image must be an ELF32 whose PT_LOAD segments go to
// p_paddr. The boot information (struct multiboot_info, the memory map from qvm's E820, boot
// modules) goes to the boot area; modules go page-aligned above the image. Every header field is
// untrusted: checked against the file and guest RAM before use.
#include <algorithm>
#include <array>
#include <cstring>

#include "arch/x86/loader_internal.hpp"
#include "base/log.hpp"

namespace qvm::arch::x86::detail {

namespace {

constexpr uint32_t kHeaderMagic = 0x1badb002;
constexpr uint64_t kSearchLimit = 8192;
// Header flags (spec 3.1.2): bits 0-15 are requirements a loader must honour or refuse.
constexpr uint32_t kPageAlignModules = 1u << 0, kWantMemory = 1u << 1, kWantVideo = 1u << 2,
                   kAddressFields = 1u << 16;
constexpr uint32_t kKnownRequirements = kPageAlignModules | kWantMemory | kWantVideo;

// multiboot_info flags (spec 3.3).
constexpr uint32_t kInfoMemory = 1u << 0, kInfoCmdline = 1u << 2, kInfoMods = 1u << 3,
                   kInfoMmap = 1u << 6, kInfoLoaderName = 1u << 9;

// Boot information layout in the boot area (the PVH start_info/zero page/page-table pages, which a
// multiboot boot does not use): info, then module list, then memory map, then the loader's name.
// Strings (the command line, module strings) go to the command-line area.
constexpr uint64_t kInfoAddr = kStartInfoAddr;  // 0x6000
constexpr uint64_t kInfoSize = 0x80;            // struct multiboot_info is 116 bytes
constexpr uint64_t kInfoAreaEnd = kPml4Addr + 0x6000;
constexpr size_t kModEntry = 16, kMmapEntry = 24;
constexpr size_t kMaxModules = 64;
constexpr char kLoaderName[] = "qvm";

uint64_t align_up(uint64_t v, uint64_t a) {
  return (v + a - 1) & ~(a - 1);
}

// The end of RAM that is contiguous from `at` (0 if `at` is not RAM). Entries may be split.
uint64_t ram_run_end(std::span<const E820Entry> map, uint64_t at) {
  bool progress = true;
  uint64_t end = at;
  while (progress) {
    progress = false;
    for (const auto& e : map)
      if (e.type == E820Type::kRam && end >= e.addr && end - e.addr < e.size) {
        end = e.addr + e.size;
        progress = true;
      }
  }
  return end;
}

// The lowest page-aligned address >= floor where `size` bytes fit in usable RAM below 4 GiB.
Result<uint64_t> place_low(std::span<const E820Entry> map, uint64_t size, uint64_t floor) {
  std::optional<uint64_t> best;
  for (const auto& e : map) {
    if (e.type != E820Type::kRam) continue;
    uint64_t start = align_up(std::max(floor, e.addr), 0x1000);
    if (start < e.addr || start >= (1ull << 32) || (1ull << 32) - start < size) continue;
    if (!in_usable_ram(map, start, size)) continue;
    if (!best || start < *best) best = start;
  }
  if (!best) return make_error("no room in guest RAM below 4 GiB");
  return *best;
}

struct Header {
  uint64_t offset = 0;  // in the file
  uint32_t flags = 0;
  uint32_t header_addr = 0, load_addr = 0, load_end_addr = 0, bss_end_addr = 0, entry_addr = 0;
};

// Packs NUL-terminated strings into the command-line area after what is there.
class StringArea {
 public:
  explicit StringArea(uint64_t used) : next_(kCmdlineAddr + used) {}
  Result<uint32_t> add(memory::GuestMemory& mem, std::string_view s, const char* what) {
    if (s.find('\0') != std::string_view::npos)
      return make_error(std::string(what) + " contains a NUL byte");
    const uint64_t end = kCmdlineAddr + kCmdlineMax;
    if (next_ > end || end - next_ < s.size() + 1)
      return make_error(
          strprintf("%s does not fit: the command line and module strings share "
                    "%llu bytes",
                    what, static_cast<unsigned long long>(kCmdlineMax)));
    std::vector<uint8_t> b(s.begin(), s.end());
    b.push_back(0);
    QVM_TRY(mem.write(next_, b));
    const uint64_t at = next_;
    next_ += b.size();
    return static_cast<uint32_t>(at);
  }

 private:
  uint64_t next_;
};

Result<std::pair<uint64_t, uint64_t>> load_aout_kludge(const LoadInput& in, const Header& h,
                                                       memory::GuestMemory& mem) {
  std::span<const uint8_t> f = in.image;
  if (h.header_addr < h.load_addr || h.header_addr - h.load_addr > h.offset)
    return make_error(strprintf(
        "multiboot header_addr 0x%x and load_addr 0x%x do not fit the header's file offset 0x%llx",
        h.header_addr, h.load_addr, static_cast<unsigned long long>(h.offset)));
  const uint64_t file_off = h.offset - (h.header_addr - h.load_addr);
  uint64_t load_size = f.size() - file_off;
  if (h.load_end_addr != 0) {
    if (h.load_end_addr <= h.load_addr || h.load_end_addr - h.load_addr > load_size)
      return make_error(
          strprintf("multiboot load_end_addr 0x%x is not within the file loaded "
                    "at 0x%x (%llu bytes from offset 0x%llx)",
                    h.load_end_addr, h.load_addr, static_cast<unsigned long long>(load_size),
                    static_cast<unsigned long long>(file_off)));
    load_size = h.load_end_addr - h.load_addr;
  }
  if (load_size == 0) return make_error("multiboot image has nothing to load");
  const uint64_t load_end = h.load_addr + load_size;
  if (load_end > (1ull << 32)) return make_error("multiboot image ends above 4 GiB");
  uint64_t end = load_end;
  if (h.bss_end_addr != 0) {
    if (h.bss_end_addr < load_end)
      return make_error(strprintf("multiboot bss_end_addr 0x%x is below the loaded end 0x%llx",
                                  h.bss_end_addr, static_cast<unsigned long long>(load_end)));
    end = h.bss_end_addr;
  }
  QVM_TRY(check_dest(in, h.load_addr, end - h.load_addr, "multiboot image"));
  QVM_TRY(mem.write(h.load_addr,
                    f.subspan(static_cast<size_t>(file_off), static_cast<size_t>(load_size))));
  QVM_TRY(mem.fill(load_end, 0, end - load_end));
  return std::pair<uint64_t, uint64_t>{h.load_addr, end};
}

}  // namespace

std::optional<MultibootHeader> find_multiboot_header(std::span<const uint8_t> image) {
  const uint64_t limit = std::min<uint64_t>(image.size(), kSearchLimit);
  for (uint64_t off = 0; off + 12 <= limit; off += 4) {
    uint32_t magic = 0, flags = 0, sum = 0;
    (void)rd(image, off, magic);
    if (magic != kHeaderMagic) continue;
    (void)rd(image, off + 4, flags);
    (void)rd(image, off + 8, sum);
    if (static_cast<uint32_t>(magic + flags + sum) != 0) continue;  // spec 3.1.2: sums to 0
    return MultibootHeader{off, flags};
  }
  return std::nullopt;
}

bool boots_as_multiboot(std::span<const uint8_t> image) {
  auto h = find_multiboot_header(image);
  if (!h) return false;
  if (h->flags & kAddressFields) return true;
  // Without the address fields the image must be ELF; multiboot v1 defines ELF32 only, so an
  // ELF64 that also carries a header (e.g. for another loader) boots as the ELF64 it is.
  return image.size() > 4 && image[0] == 0x7f && image[1] == 'E' && image[2] == 'L' &&
         image[3] == 'F' && image[4] == 1;
}

Result<BootPlan> load_multiboot(const LoadInput& in, memory::GuestMemory& mem) {
  auto found = find_multiboot_header(in.image);
  if (!found) return make_error("no multiboot header in the first 8 KiB");
  Header h;
  h.offset = found->offset;
  h.flags = found->flags;
  const uint32_t unknown = h.flags & 0xffffu & ~kKnownRequirements;
  if (unknown)
    return make_error(
        strprintf("multiboot header requires features qvm does not provide "
                  "(flags 0x%x, unknown requirement bits 0x%x)",
                  h.flags, unknown));
  if (h.flags & kWantVideo)
    log_warn(
        "multiboot: the image asks for a video mode; qvm has no framebuffer (text console "
        "only), so the boot information carries none");
  std::pair<uint64_t, uint64_t> span;
  uint64_t entry = 0;
  if (h.flags & kAddressFields) {
    std::array<uint32_t, 5> a{};
    for (size_t i = 0; i < a.size(); i++)
      if (!rd(in.image, h.offset + 12 + 4 * i, a[i]))
        return make_error("multiboot header's address fields are outside the file");
    h.header_addr = a[0];
    h.load_addr = a[1];
    h.load_end_addr = a[2];
    h.bss_end_addr = a[3];
    h.entry_addr = a[4];
    span = QVM_TRY(load_aout_kludge(in, h, mem));
    entry = h.entry_addr;
  } else {
    ElfImage img = QVM_TRY(load_elf(in, mem));
    if (img.is64)
      return make_error("a multiboot ELF must be ELF32 (or set the header's address fields)");
    span = {img.start, img.end};
    entry = img.elf_entry;
  }
  if (entry < span.first || entry >= span.second)
    log_warn("multiboot: entry 0x%llx is outside the loaded image 0x%llx-0x%llx",
             static_cast<unsigned long long>(entry), static_cast<unsigned long long>(span.first),
             static_cast<unsigned long long>(span.second));

  if (in.modules.size() > kMaxModules)
    return make_error(
        strprintf("%zu multiboot modules (at most %zu)", in.modules.size(), kMaxModules));
  BootPlan plan;
  plan.mode = BootPlan::Mode::kMultiboot;
  plan.entry = entry;
  plan.kernel_start = span.first;
  plan.kernel_end = span.second;

  // Strings: the command line (GRUB legacy's convention: the image's name, then the arguments;
  // Xen strips that first word), then module strings.
  plan.cmdline_addr = QVM_TRY(write_cmdline(mem, in.cmdline, kCmdlineMax - 1));
  StringArea strings(in.cmdline.size() + 1);

  // Modules, page-aligned (always, whether or not flag 0 asks) one after another above the image.
  std::vector<uint8_t> mods(in.modules.size() * kModEntry, 0);
  uint64_t floor = align_up(span.second, 0x1000);
  for (size_t i = 0; i < in.modules.size(); i++) {
    const auto& m = in.modules[i];
    const uint64_t size = std::max<uint64_t>(m.bytes.size(), 1);
    auto at = place_low(in.e820, size, floor);
    if (!at.ok())
      return make_error(
          strprintf("multiboot module %zu (%zu bytes) does not fit in guest RAM "
                    "above 0x%llx below 4 GiB",
                    i, m.bytes.size(), static_cast<unsigned long long>(floor)));
    QVM_TRY(mem.write(*at, m.bytes));
    const uint32_t str = QVM_TRY(strings.add(mem, m.string, "a multiboot module string"));
    const std::array<uint32_t, 4> e{static_cast<uint32_t>(*at),
                                    static_cast<uint32_t>(*at + m.bytes.size()), str, 0};
    std::memcpy(mods.data() + i * kModEntry, e.data(), kModEntry);
    if (i == 0) {
      plan.initrd_addr = *at;
      plan.initrd_size = m.bytes.size();
    }
    floor = align_up(*at + size, 0x1000);
  }

  // The memory map (spec 3.3: each entry's `size` field counts the 20 bytes after it).
  const uint64_t mods_addr = kInfoAddr + kInfoSize;
  const uint64_t mmap_addr = mods_addr + mods.size();
  const uint64_t name_addr = mmap_addr + in.e820.size() * kMmapEntry;
  if (name_addr + sizeof kLoaderName > kInfoAreaEnd)
    return make_error(
        strprintf("%zu memory map entries do not fit the multiboot information", in.e820.size()));
  std::vector<uint8_t> mmap(in.e820.size() * kMmapEntry, 0);
  for (size_t i = 0; i < in.e820.size(); i++) {
    uint8_t* p = mmap.data() + i * kMmapEntry;
    const uint32_t size = 20, type = static_cast<uint32_t>(in.e820[i].type);
    std::memcpy(p, &size, 4);
    std::memcpy(p + 4, &in.e820[i].addr, 8);
    std::memcpy(p + 12, &in.e820[i].size, 8);
    std::memcpy(p + 20, &type, 4);
  }

  // mem_lower: KiB of RAM from 0 (at most 640); mem_upper: KiB of RAM contiguous from 1 MiB.
  const uint64_t lower = std::min<uint64_t>(ram_run_end(in.e820, 0), 640 * 1024) / 1024;
  const uint64_t upper_end = ram_run_end(in.e820, 0x100000);
  const uint64_t upper =
      std::min<uint64_t>(upper_end > 0x100000 ? (upper_end - 0x100000) / 1024 : 0, 0xffffffffu);

  std::array<uint32_t, kInfoSize / 4> info{};
  info[0] = kInfoMemory | kInfoCmdline | kInfoMods | kInfoMmap | kInfoLoaderName;
  info[1] = static_cast<uint32_t>(lower);
  info[2] = static_cast<uint32_t>(upper);
  info[4] = static_cast<uint32_t>(plan.cmdline_addr);
  info[5] = static_cast<uint32_t>(in.modules.size());
  info[6] = static_cast<uint32_t>(mods_addr);
  info[11] = static_cast<uint32_t>(mmap.size());
  info[12] = static_cast<uint32_t>(mmap_addr);
  info[16] = static_cast<uint32_t>(name_addr);
  QVM_TRY(mem.fill(kInfoAddr, 0, kInfoAreaEnd - kInfoAddr));
  QVM_TRY(mem.write_obj(kInfoAddr, info));
  QVM_TRY(mem.write(mods_addr, mods));
  QVM_TRY(mem.write(mmap_addr, mmap));
  QVM_TRY(
      mem.write(name_addr, std::vector<uint8_t>(kLoaderName, kLoaderName + sizeof kLoaderName)));
  plan.rax = kBootloaderMagic;
  plan.rbx = kInfoAddr;
  return plan;
}

}  // namespace qvm::arch::x86::detail
