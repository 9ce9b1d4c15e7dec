// x86 registers as GDB sees them: one neutral X86State (what the machine reads from KVM), and
// for each of the two register sets the stub offers — x86-64 and i386, chosen by the vCPU's mode
// so 32-bit guests are debugged with 32-bit registers — the order, sizes and target description
// XML GDB needs (GDB manual, "Target Descriptions", "i386 Features"). The `g` packet, `p`/`P`
// and the XML all come from one table, so they cannot disagree.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace qvm::gdb {

enum class Arch { kX86_64, kI386 };

struct X86State {
  // General registers in x86-64 order: rax rbx rcx rdx rsi rdi rbp rsp r8..r15.
  uint64_t gpr[16] = {};
  uint64_t rip = 0, rflags = 0;
  uint32_t seg[6] = {};  // selectors: cs ss ds es fs gs
  uint64_t fs_base = 0, gs_base = 0;
  uint64_t cr0 = 0, cr2 = 0, cr3 = 0, cr4 = 0, cr8 = 0, efer = 0;
  uint8_t st[8][10] = {};  // x87 registers, 80-bit
  uint32_t fctrl = 0, fstat = 0, ftag = 0, fiseg = 0, fioff = 0, foseg = 0, fooff = 0, fop = 0;
  uint8_t xmm[16][16] = {};
  uint32_t mxcsr = 0;
};

struct RegDesc {
  const char* name;
  uint32_t size;     // bytes in the packet
  size_t offset;     // into X86State (the low bytes of a wider field for i386)
  const char* type;  // tdesc type
  const char* feature;
};

const std::vector<RegDesc>& registers(Arch a);
// Target description (qXfer:features:read:target.xml).
const std::string& target_xml(Arch a);

// The `g` reply: every register in order, little-endian hex.
std::string encode_all(const X86State& s, Arch a);
// A `G` payload into `s`; false if its length or digits are wrong (nothing written then).
bool decode_all(std::string_view hex, X86State& s, Arch a);
// One register (`p n` / `P n=v`); nullopt / false when n is out of range or the value malformed.
std::optional<std::string> encode_one(const X86State& s, Arch a, size_t n);
bool decode_one(std::string_view hex, X86State& s, Arch a, size_t n);
// The program counter register number (for `T` replies).
size_t pc_regnum(Arch a);

}  // namespace qvm::gdb
