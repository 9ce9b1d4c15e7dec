// The BIOS Data Area (0x400-0x4ff) a PC's firmware leaves behind, for guests qvm boots without
// firmware. Multiboot kernels read it: Xen places its real-mode trampoline below the EBDA segment
// (0x40e) or the base memory size (0x413), and with zeros there it computed an address just
// below 4 GiB. Fields (IBM PC/AT BIOS technical reference; Ralf Brown's "Memory Map", BIOS Data
// Area):
//   0x400  4 x u16  I/O base of COM1..COM4 (0 = absent)
//   0x40e  u16      EBDA segment (0: none; qvm has no EBDA)
//   0x410  u16      equipment word: bit 1 math coprocessor, bits 9-11 number of serial ports
//   0x413  u16      base memory in KiB (RAM contiguous from 0, at most 640)
#pragma once

#include <cstdint>
#include <vector>

#include "arch/x86/layout.hpp"
#include "base/result.hpp"
#include "memory/guest_memory.hpp"

namespace qvm::arch::x86 {

inline constexpr uint64_t kBdaAddr = 0x400, kBdaSize = 0x100;

// The 256 bytes of the BDA for the layout (serial ports from its PNP0501 ISA devices, in order;
// base memory from its RAM ranges). Pure.
std::vector<uint8_t> bda_bytes(const MachineLayout& layout);

// Writes bda_bytes() at 0x400 if that is guest RAM (else nothing: a guest without low RAM has no
// BDA to read either).
Status build_bda(const MachineLayout& layout, memory::GuestMemory& mem);

}  // namespace qvm::arch::x86
