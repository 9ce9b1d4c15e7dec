// Linux bzImage loading per Documentation/arch/x86/boot.rst (boot protocol >= 2.06), 32-bit
// entry. The real-mode setup code is not run: qvm builds the zero page (struct boot_params,
// Documentation/arch/x86/zero-page.rst) itself from the image's setup header.
#include <algorithm>
#include <array>

#include "arch/x86/loader_internal.hpp"
#include "base/log.hpp"

namespace qvm::arch::x86::detail {

namespace {

// Offsets in the image and in boot_params (the setup header sits at 0x1f1 in both).
constexpr uint64_t kSetupSects = 0x1f1, kBootFlag = 0x1fe, kJump = 0x200, kHeader = 0x202;
constexpr uint64_t kVersion = 0x206, kTypeOfLoader = 0x210, kLoadflags = 0x211;
constexpr uint64_t kCode32Start = 0x214, kRamdiskImage = 0x218, kRamdiskSize = 0x21c;
constexpr uint64_t kCmdLinePtr = 0x228, kInitrdAddrMax = 0x22c, kCmdlineSize = 0x238;
constexpr uint64_t kPrefAddress = 0x258, kInitSize = 0x260;
constexpr uint64_t kSetupHeaderMax = 0x290;  // struct setup_header ends before 0x290
constexpr uint64_t kAcpiRsdpAddr = 0x070, kE820Entries = 0x1e8, kE820Table = 0x2d0;
constexpr size_t kE820Max = 128;  // E820_MAX_ENTRIES_ZEROPAGE
constexpr uint8_t kLoadedHigh = 0x01;
constexpr uint64_t kHighLoad = 0x100000;

template <typename T>
void put(std::array<uint8_t, 4096>& zp, uint64_t off, T v) {
  for (size_t i = 0; i < sizeof(T); i++)
    zp[static_cast<size_t>(off) + i] = static_cast<uint8_t>(static_cast<uint64_t>(v) >> (8 * i));
}

template <typename T>
T get(const std::array<uint8_t, 4096>& zp, uint64_t off) {
  T v{};
  (void)rd(std::span<const uint8_t>(zp), off, v);
  return v;
}

}  // namespace

Result<BootPlan> load_bzimage(const LoadInput& in, memory::GuestMemory& mem) {
  std::span<const uint8_t> f = in.image;
  uint16_t boot_flag = 0, version = 0;
  if (!rd(f, kBootFlag, boot_flag) || !rd(f, kVersion, version))
    return make_error("bzImage: setup header truncated");
  if (boot_flag != 0xaa55) return make_error("bzImage: bad boot_flag (expected 0xAA55)");
  if (version < 0x206)
    return make_error(strprintf("bzImage: boot protocol %u.%02u is older than 2.06", version >> 8,
                                version & 0xff));
  // The setup header ends at 0x202 + the byte at 0x201 (boot.rst, "Details of header fields").
  const uint64_t hdr_end = std::min<uint64_t>(kHeader + f[kJump + 1], kSetupHeaderMax);
  if (hdr_end > f.size()) return make_error("bzImage: setup header truncated");
  const uint64_t setup_sects = f[kSetupSects] == 0 ? 4 : f[kSetupSects];
  const uint64_t setup_size = (setup_sects + 1) * 512;
  if (setup_size < hdr_end || setup_size >= f.size())
    return make_error("bzImage: setup_sects does not match the file size");

  std::array<uint8_t, 4096> zp{};
  std::copy(f.begin() + kSetupSects, f.begin() + static_cast<ptrdiff_t>(hdr_end),
            zp.begin() + kSetupSects);
  if ((zp[kLoadflags] & kLoadedHigh) == 0)
    return make_error("bzImage: not a bzImage (LOADED_HIGH clear); zImage is not supported");

  // Protected-mode kernel: at pref_address (protocol 2.10+) if it and init_size fit in RAM,
  // else at 1 MiB; a relocatable kernel relocates itself, a fixed one moves to pref_address.
  std::span<const uint8_t> kernel = f.subspan(static_cast<size_t>(setup_size));
  uint64_t need = kernel.size();
  uint64_t pref = 0;
  if (version >= 0x20a) {
    need = std::max<uint64_t>(need, get<uint32_t>(zp, kInitSize));
    pref = get<uint64_t>(zp, kPrefAddress);
  }
  uint64_t load = kHighLoad;
  if (pref != 0 && pref + need < (1ull << 32) && in_usable_ram(in.e820, pref, need)) load = pref;
  QVM_TRY(check_dest(in, load, need, "bzImage kernel (init_size)"));
  QVM_TRY(mem.write(load, kernel));

  BootPlan plan;
  plan.mode = BootPlan::Mode::kLinux32;
  plan.entry = load;
  plan.rsi = kZeroPageAddr;
  plan.kernel_start = load;
  plan.kernel_end = load + need;

  put<uint8_t>(zp, kTypeOfLoader, 0xff);  // undefined boot loader
  put<uint32_t>(zp, kCode32Start, static_cast<uint32_t>(load));

  uint32_t cmdline_max = get<uint32_t>(zp, kCmdlineSize);
  plan.cmdline_addr =
      QVM_TRY(write_cmdline(mem, in.cmdline, std::min<uint64_t>(cmdline_max, kCmdlineMax - 1)));
  put<uint32_t>(zp, kCmdLinePtr, static_cast<uint32_t>(plan.cmdline_addr));

  // initrd: highest fit with ramdisk_image + ramdisk_size - 1 <= initrd_addr_max.
  uint64_t initrd_max = get<uint32_t>(zp, kInitrdAddrMax);
  if (initrd_max == 0) initrd_max = 0x37ffffff;  // boot.rst: default for old kernels
  QVM_TRY(load_initrd(in, mem, plan.kernel_end, initrd_max + 1, plan));
  put<uint32_t>(zp, kRamdiskImage, static_cast<uint32_t>(plan.initrd_addr));
  put<uint32_t>(zp, kRamdiskSize, static_cast<uint32_t>(plan.initrd_size));

  if (in.e820.size() > kE820Max) return make_error("too many E820 entries for boot_params");
  put<uint8_t>(zp, kE820Entries, static_cast<uint8_t>(in.e820.size()));
  for (size_t i = 0; i < in.e820.size(); i++) {  // struct boot_e820_entry: addr, size, type
    uint64_t off = kE820Table + 20 * i;
    put<uint64_t>(zp, off, in.e820[i].addr);
    put<uint64_t>(zp, off + 8, in.e820[i].size);
    put<uint32_t>(zp, off + 16, static_cast<uint32_t>(in.e820[i].type));
  }
  if (version >= 0x20e) put<uint64_t>(zp, kAcpiRsdpAddr, in.rsdp_addr);
  QVM_TRY(mem.write_obj(kZeroPageAddr, zp));
  return plan;
}

}  // namespace qvm::arch::x86::detail
