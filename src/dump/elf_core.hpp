// Guest dumps as ELF64 core files (spec §3.13, §8.5; docs/debugging.md "Guest dumps"). The file is
// what GDB reads as an x86-64 Linux core, so `gdb GUEST.elf CORE` shows every vCPU as a thread:
//
//   ELF header       ET_CORE, EM_X86_64, ELFCLASS64, little endian
//   program headers  one PT_NOTE, then one PT_LOAD per guest memory region
//   PT_NOTE          per vCPU an NT_PRSTATUS ("CORE", struct elf_prstatus of x86-64 Linux, 336
//                    bytes, pr_pid = vCPU index + 1) and a "QVM" note with its system registers
//                    (NT_QVM_VCPU, below); one NT_PRPSINFO naming the VM
//   PT_LOAD          p_vaddr = p_paddr = the region's guest-physical address, p_offset page
//                    aligned; the region's bytes
//
// GDB reads memory by p_vaddr: right for guests that identity-map what they run (the test kit,
// many small kernels); a guest with its own page tables (Linux) needs a physical-address-aware
// tool and the CR3 in the QVM note. Registers of a 32-bit guest go through the same 64-bit
// layout: the low halves are the guest's registers, the high halves are what KVM holds (zero).
//
// The writer streams: headers and notes from a small buffer, guest memory straight from its host
// mapping to the fd in bounded chunks, so a 4 GiB guest needs no 4 GiB buffer. It knows no KVM
// type: the machine fills CoreInput (unit tests fill it with their own bytes).
#pragma once

#include <chrono>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "base/result.hpp"

namespace qvm::dump {

// One vCPU's registers (KVM_GET_REGS and KVM_GET_SREGS on x86-64).
struct VcpuRegs {
  uint64_t rax = 0, rbx = 0, rcx = 0, rdx = 0, rsi = 0, rdi = 0, rbp = 0, rsp = 0;
  uint64_t r8 = 0, r9 = 0, r10 = 0, r11 = 0, r12 = 0, r13 = 0, r14 = 0, r15 = 0;
  uint64_t rip = 0, rflags = 0;
  uint16_t cs = 0, ss = 0, ds = 0, es = 0, fs = 0, gs = 0;  // selectors
  uint64_t fs_base = 0, gs_base = 0;
  // For the QVM note: what a tool needs to walk the guest's page tables and descriptor tables.
  uint64_t cr0 = 0, cr2 = 0, cr3 = 0, cr4 = 0, efer = 0;
  uint64_t gdt_base = 0, idt_base = 0;
  uint16_t gdt_limit = 0, idt_limit = 0;
};

// One guest memory region: its guest-physical address and the host bytes behind it.
struct MemorySpan {
  uint64_t gpa = 0;
  std::span<const uint8_t> host;
  bool readonly = false;  // ROM: the segment is not marked writable
};

struct CoreInput {
  std::string name;  // the VM (`system`), for NT_PRPSINFO
  std::vector<VcpuRegs> vcpus;
  std::vector<MemorySpan> memory;
};

// ELF constants the format needs (elf.h values; named here so tests and docs can cite them).
inline constexpr uint32_t kNtPrstatus = 1;  // NT_PRSTATUS
inline constexpr uint32_t kNtPrpsinfo = 3;  // NT_PRPSINFO
// The "QVM" note per vCPU: u32 version (1), u32 vCPU index, then u64 cr0, cr2, cr3, cr4, efer,
// gdt_base, idt_base, then u16 gdt_limit, idt_limit, u32 0 (72 bytes). A type number that BFD
// does not know, so GDB ignores the note instead of taking it for one of its own.
inline constexpr uint32_t kNtQvmVcpu = 0x514d5601;
inline constexpr size_t kPrstatusSize = 336;  // struct elf_prstatus, x86-64 Linux
inline constexpr size_t kPrRegOffset = 112;   // pr_reg (user_regs_struct, 27 x u64)
inline constexpr size_t kPrPidOffset = 32;
inline constexpr size_t kPrpsinfoSize = 136;  // struct elf_prpsinfo, x86-64 Linux
inline constexpr size_t kQvmVcpuSize = 72;
inline constexpr uint64_t kPageSize = 4096;

// Where things land in the file; computed before anything is written (the program headers carry
// the offsets).
struct CoreLayout {
  uint64_t notes_offset = 0, notes_size = 0;
  std::vector<uint64_t> load_offsets;  // per CoreInput::memory entry, page aligned
  uint64_t total = 0;                  // the file's size
};
Result<CoreLayout> core_layout(const CoreInput& in);

// The 27 u64 of user_regs_struct in GDB's order (r15 r14 r13 r12 rbp rbx r11 r10 r9 r8 rax rcx rdx
// rsi rdi orig_rax rip cs eflags rsp ss fs_base gs_base ds es fs gs); orig_rax is -1 (not in a
// system call).
std::vector<uint64_t> user_regs(const VcpuRegs& r);

struct WriteOptions {
  size_t chunk = 1 << 20;  // bytes per write(2) of guest memory
  // A pipe whose reader stops reading: give up after this long without progress (a dump must not
  // hold the VM forever, spec §3.13 `|command`).
  std::chrono::milliseconds stall{30000};
};

// Writes the core to `fd` (a file or a pipe, blocking or not; short writes and EINTR are retried,
// EAGAIN waits in poll(2)). Returns the bytes written (= core_layout().total). SIGPIPE is held
// off this thread meanwhile: a reader that goes away gives EPIPE, not a dead process.
Result<uint64_t> write_core(int fd, const CoreInput& in, const WriteOptions& opts = {});

}  // namespace qvm::dump
