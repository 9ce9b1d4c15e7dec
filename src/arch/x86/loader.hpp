// Guest kernel loading for x86 (spec §3.5 `load`): the image is auto-detected as
//   - a multiboot v1 header in the first 8 KiB (with its address fields, or in an ELF32)
//                                                              -> Mode::kMultiboot
//     (checked first, as QEMU and GRUB do: Xen's ELF carries both a multiboot header and a
//     PVH note and is meant to boot by multiboot)
//   - ELF (32- or 64-bit, x86) with a Xen PVH note            -> Mode::kPvh32
//   - ELF64 without the note                                   -> Mode::kElf64 (long mode)
//   - Linux bzImage, boot protocol >= 2.06                     -> Mode::kLinux32
//   - anything else: raw data at `load_addr`, entry = its first byte -> Mode::kRaw
// The image and initrd are untrusted input: every read is bounds-checked against the file buffer
// and every write goes through GuestMemory, which rejects ranges outside guest memory. Boot data
// (GDT, page tables, start_info, boot_params, command line) lives in the low boot area below.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "arch/x86/e820.hpp"
#include "base/result.hpp"
#include "memory/guest_memory.hpp"

namespace qvm::arch::x86 {

// Low-memory boot area [kBootAreaStart, kBootAreaEnd): kernels may not load segments here.
inline constexpr uint64_t kBootAreaStart = 0x1000;
inline constexpr uint64_t kGdtAddr = 0x1000;        // 4 descriptors, see BootPlan
inline constexpr uint64_t kStartInfoAddr = 0x6000;  // hvm_start_info, modlist, memmap (PVH, ELF64)
inline constexpr uint64_t kZeroPageAddr = 0x7000;   // Linux boot_params ("zero page"), 4 KiB
inline constexpr uint64_t kPml4Addr = 0x9000;       // identity page tables: PML4, PDPT, 4 PDs
inline constexpr uint64_t kCmdlineAddr = 0x20000;   // NUL-terminated command line
inline constexpr uint64_t kCmdlineMax = 0x10000;    // including the NUL
inline constexpr uint64_t kBootAreaEnd = 0x30000;
inline constexpr uint64_t kDefaultRawAddr = 0x100000;     // raw blob without an address
inline constexpr uint64_t kIdentityMapSize = 4ull << 30;  // ELF64 page tables map 0-4 GiB

// GDT at kGdtAddr (limit 0x1f): all flat (base 0, limit 4 GiB, G=1), DPL 0.
inline constexpr uint16_t kCode64Selector = 0x08;  // 0x00af9b000000ffff: code, L=1, D=0
inline constexpr uint16_t kCode32Selector = 0x10;  // 0x00cf9b000000ffff: code, D=1 (__BOOT_CS)
inline constexpr uint16_t kDataSelector = 0x18;    // 0x00cf93000000ffff: data, B=1 (__BOOT_DS)

// A multiboot boot module (`module load`, and `initrd load` for a multiboot image): its bytes and
// its string (the file name and arguments, as GRUB's `module` command gives them).
struct BootModule {
  std::span<const uint8_t> bytes;
  std::string_view string;
};

inline constexpr uint32_t kBootloaderMagic = 0x2badb002;  // EAX at a multiboot entry

struct LoadInput {
  std::span<const uint8_t> image;                  // the `load` file
  std::optional<uint64_t> load_addr;               // `load addr,file`: only used for raw images
  std::optional<std::span<const uint8_t>> initrd;  // `initrd load file`
  std::string_view cmdline;                        // `cmdline`
  uint64_t rsdp_addr = 0;                          // from build_acpi(); 0 = none
  std::span<const E820Entry> e820;                 // the guest's memory map (e820(layout))
  std::span<const BootModule> modules;             // multiboot images only
};

// Where the boot vCPU starts. Register state the vCPU must be given (all modes: RFLAGS = 0x2
// (IF=0, VM=0), interrupts and NMIs not pending; IDTR base 0 limit 0; LDTR unusable; TR a 32-bit
// busy TSS: selector 0, base 0, limit 0x67, type 11, present; GPRs not listed below are 0; CR4 bits
// not listed are 0; the GDTR is {gdt_base, gdt_limit}; segment attributes as in the descriptors
// listed above, i.e. for 32-bit code: type 0xb (execute/read, accessed), S=1, DPL=0, P=1, D/B=1,
// L=0, G=1, base 0, limit 0xffffffff; data: type 0x3 (read/write, accessed), S=1, DPL=0, P=1,
// D/B=1, G=1, base 0, limit 0xffffffff; 64-bit code: type 0xb, S=1, P=1, L=1, D/B=0, G=1):
//
//   kPvh32   (Xen PVH ABI, xen/include/public/arch-x86/hvm/start_info.h):
//            CR0 = PE | ET (0x11), CR4 = 0, EFER = 0, paging off.
//            CS = kCode32Selector (32-bit code); DS = ES = SS = FS = GS = kDataSelector.
//            RIP = entry (the PHYS32_ENTRY note), RBX = rbx (hvm_start_info).
//   kLinux32 (Documentation/arch/x86/boot.rst, "32-bit Boot Protocol"):
//            CR0 = PE | ET, CR4 = 0, EFER = 0, paging off.
//            CS = kCode32Selector (__BOOT_CS 0x10); DS = ES = SS = FS = GS = kDataSelector
//            (__BOOT_DS 0x18). RIP = entry (code32_start), RSI = rsi (boot_params);
//            RBP = RDI = RBX = 0.
//   kElf64   CR0 = PE | ET | PG (0x80000011), CR4 = PAE (0x20), EFER = LME | LMA (0x500),
//            CR3 = cr3 (identity map of 0-4 GiB with 2 MiB pages).
//            CS = kCode64Selector (64-bit code); DS = ES = SS = FS = GS = kDataSelector.
//            RIP = entry (e_entry), RBX = rbx (an hvm_start_info too, for guests that want one).
//   kMultiboot (Multiboot Specification 0.6.96, 3.2 "Machine state"): as kPvh32, with
//            EAX = rax (kBootloaderMagic) and EBX = rbx (struct multiboot_info).
//   kRaw     as kPvh32 with RBX = 0: 32-bit flat protected mode, RIP = entry (first byte).
struct BootPlan {
  enum class Mode { kPvh32, kLinux32, kElf64, kMultiboot, kRaw };
  Mode mode = Mode::kRaw;
  uint64_t entry = 0;
  uint64_t rax = 0;
  uint64_t rbx = 0;
  uint64_t rsi = 0;
  uint64_t gdt_base = kGdtAddr;
  uint16_t gdt_limit = 0x1f;
  uint64_t cr3 = 0;  // kElf64 only

  // Where things went (for logs, dryrun and tests).
  uint64_t kernel_start = 0;  // lowest byte written for the image
  uint64_t kernel_end = 0;    // end of the image (for bzImage: of init_size)
  uint64_t initrd_addr = 0;   // multiboot: the first module
  uint64_t initrd_size = 0;
  uint64_t cmdline_addr = 0;  // 0 if no command line was written
};

enum class ImageKind { kMultiboot, kElf, kBzImage, kRaw };
ImageKind detect_image(std::span<const uint8_t> image);
const char* boot_mode_name(BootPlan::Mode m);

// Loads the image (and initrd, command line) and writes the boot data. On error guest memory may
// have been partly written; the caller discards the VM.
Result<BootPlan> load_kernel(const LoadInput& in, memory::GuestMemory& mem);

}  // namespace qvm::arch::x86
