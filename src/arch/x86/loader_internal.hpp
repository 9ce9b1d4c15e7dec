// Shared helpers of the loaders (loader.cpp, loader_elf.cpp, loader_bzimage.cpp). Not public API.
#pragma once

#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <type_traits>

#include "arch/x86/loader.hpp"

namespace qvm::arch::x86::detail {

// Reads a little-endian T at `off` of `b`; false (and out untouched) if it does not fit.
template <typename T>
bool rd(std::span<const uint8_t> b, uint64_t off, T& out) {
  static_assert(std::is_integral_v<T>);
  if (off > b.size() || b.size() - off < sizeof(T)) return false;
  std::memcpy(&out, b.data() + off, sizeof(T));  // x86 hosts: little-endian
  return true;
}

// True if [addr, addr+len) lies inside usable RAM of the map and outside the boot area.
bool in_usable_ram(std::span<const E820Entry> map, uint64_t addr, uint64_t len);
// Checks a kernel segment destination: usable RAM, outside the boot area; error text names `what`.
Status check_dest(const LoadInput& in, uint64_t addr, uint64_t len, const char* what);

// The highest page-aligned address where `size` bytes fit in usable RAM, ending at or below
// `max_end`, starting at or above `floor`.
Result<uint64_t> place_high(std::span<const E820Entry> map, uint64_t size, uint64_t floor,
                            uint64_t max_end);

// Common boot data.
Status write_gdt(memory::GuestMemory& mem);
Result<uint64_t> write_cmdline(memory::GuestMemory& mem, std::string_view cmdline,
                               uint64_t max_len);
// Writes the initrd (if any) as high as possible below `max_end`, above `floor`.
Status load_initrd(const LoadInput& in, memory::GuestMemory& mem, uint64_t floor, uint64_t max_end,
                   BootPlan& plan);

struct ElfImage {
  uint64_t entry = 0;      // the PVH entry if there is one, else e_entry
  uint64_t elf_entry = 0;  // e_entry
  bool pvh = false;        // entry is the XEN_ELFNOTE_PHYS32_ENTRY
  bool is64 = false;       // ELFCLASS64
  uint64_t start = 0, end = 0;
};
Result<ElfImage> load_elf(const LoadInput& in, memory::GuestMemory& mem);
Result<BootPlan> load_bzimage(const LoadInput& in, memory::GuestMemory& mem);

// Multiboot v1 (loader_multiboot.cpp).
struct MultibootHeader {
  uint64_t offset = 0;  // in the file, 4-byte aligned, below 8 KiB
  uint32_t flags = 0;
};
std::optional<MultibootHeader> find_multiboot_header(std::span<const uint8_t> image);
// A header with its address fields, or a header in an ELF32 (ELF64 boots as ELF64).
bool boots_as_multiboot(std::span<const uint8_t> image);
Result<BootPlan> load_multiboot(const LoadInput& in, memory::GuestMemory& mem);

}  // namespace qvm::arch::x86::detail
