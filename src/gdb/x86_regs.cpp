#include "gdb/x86_regs.hpp"

#include <cstring>

#include "gdb/packet.hpp"

namespace qvm::gdb {
namespace {

constexpr const char* kCore = "org.gnu.gdb.i386.core";
constexpr const char* kSse = "org.gnu.gdb.i386.sse";
constexpr const char* kSeg = "org.gnu.gdb.i386.segments";
// Control registers and EFER are not in any feature GDB knows; under a feature of our own GDB
// still shows them in `info registers` and lets `p $cr3` read them.
constexpr const char* kSys = "org.qvm.x86.sys";

#define QVM_OFF(field) offsetof(X86State, field)

std::vector<RegDesc> build(Arch a) {
  std::vector<RegDesc> r;
  if (a == Arch::kX86_64) {
    static const char* kNames[16] = {"rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp",
                                     "r8",  "r9",  "r10", "r11", "r12", "r13", "r14", "r15"};
    for (int i = 0; i < 16; ++i)
      r.push_back({kNames[i], 8, QVM_OFF(gpr) + 8 * static_cast<size_t>(i),
                   i == 6 || i == 7 ? "data_ptr" : "int64", kCore});
    r.push_back({"rip", 8, QVM_OFF(rip), "code_ptr", kCore});
  } else {
    // i386 order (GDB's i386 register numbers): eax ecx edx ebx esp ebp esi edi.
    static const char* kNames[8] = {"eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi"};
    static const int kGpr[8] = {0, 2, 3, 1, 7, 6, 4, 5};
    for (int i = 0; i < 8; ++i)
      r.push_back({kNames[i], 4, QVM_OFF(gpr) + 8 * static_cast<size_t>(kGpr[i]),
                   i == 4 || i == 5 ? "data_ptr" : "int32", kCore});
    r.push_back({"eip", 4, QVM_OFF(rip), "code_ptr", kCore});
  }
  r.push_back({"eflags", 4, QVM_OFF(rflags), "int32", kCore});
  static const char* kSegs[6] = {"cs", "ss", "ds", "es", "fs", "gs"};
  for (int i = 0; i < 6; ++i)
    r.push_back({kSegs[i], 4, QVM_OFF(seg) + 4 * static_cast<size_t>(i), "int32", kCore});
  for (int i = 0; i < 8; ++i) {
    static const char* kSt[8] = {"st0", "st1", "st2", "st3", "st4", "st5", "st6", "st7"};
    r.push_back({kSt[i], 10, QVM_OFF(st) + 10 * static_cast<size_t>(i), "i387_ext", kCore});
  }
  r.push_back({"fctrl", 4, QVM_OFF(fctrl), "int", kCore});
  r.push_back({"fstat", 4, QVM_OFF(fstat), "int", kCore});
  r.push_back({"ftag", 4, QVM_OFF(ftag), "int", kCore});
  r.push_back({"fiseg", 4, QVM_OFF(fiseg), "int", kCore});
  r.push_back({"fioff", 4, QVM_OFF(fioff), "int", kCore});
  r.push_back({"foseg", 4, QVM_OFF(foseg), "int", kCore});
  r.push_back({"fooff", 4, QVM_OFF(fooff), "int", kCore});
  r.push_back({"fop", 4, QVM_OFF(fop), "int", kCore});
  const int nxmm = a == Arch::kX86_64 ? 16 : 8;
  static const char* kXmm[16] = {"xmm0",  "xmm1",  "xmm2",  "xmm3", "xmm4",  "xmm5",
                                 "xmm6",  "xmm7",  "xmm8",  "xmm9", "xmm10", "xmm11",
                                 "xmm12", "xmm13", "xmm14", "xmm15"};
  for (int i = 0; i < nxmm; ++i)
    r.push_back({kXmm[i], 16, QVM_OFF(xmm) + 16 * static_cast<size_t>(i), "vec128", kSse});
  r.push_back({"mxcsr", 4, QVM_OFF(mxcsr), "int", kSse});
  if (a == Arch::kX86_64) {
    r.push_back({"fs_base", 8, QVM_OFF(fs_base), "int", kSeg});
    r.push_back({"gs_base", 8, QVM_OFF(gs_base), "int", kSeg});
  }
  const uint32_t w = a == Arch::kX86_64 ? 8 : 4;
  r.push_back({"cr0", w, QVM_OFF(cr0), "int", kSys});
  r.push_back({"cr2", w, QVM_OFF(cr2), "int", kSys});
  r.push_back({"cr3", w, QVM_OFF(cr3), "int", kSys});
  r.push_back({"cr4", w, QVM_OFF(cr4), "int", kSys});
  if (a == Arch::kX86_64) r.push_back({"cr8", 8, QVM_OFF(cr8), "int", kSys});
  r.push_back({"efer", w, QVM_OFF(efer), "int", kSys});
  return r;
}

#undef QVM_OFF

std::string build_xml(Arch a) {
  const auto& regs = registers(a);
  std::string x =
      "<?xml version=\"1.0\"?>\n<!DOCTYPE target SYSTEM \"gdb-target.dtd\">\n<target "
      "version=\"1.0\">\n<architecture>";
  x += a == Arch::kX86_64 ? "i386:x86-64" : "i386";
  x += "</architecture>\n";
  const char* open = nullptr;
  for (size_t i = 0; i < regs.size(); ++i) {
    const RegDesc& d = regs[i];
    if (open == nullptr || std::strcmp(open, d.feature) != 0) {
      if (open) x += "</feature>\n";
      open = d.feature;
      x += std::string("<feature name=\"") + d.feature + "\">\n";
      if (std::strcmp(d.feature, kSse) == 0) {
        // The SSE registers' union type, as GDB's own descriptions build it.
        x += "<vector id=\"v4f\" type=\"ieee_single\" count=\"4\"/>\n"
             "<vector id=\"v2d\" type=\"ieee_double\" count=\"2\"/>\n"
             "<vector id=\"v16i8\" type=\"int8\" count=\"16\"/>\n"
             "<vector id=\"v8i16\" type=\"int16\" count=\"8\"/>\n"
             "<vector id=\"v4i32\" type=\"int32\" count=\"4\"/>\n"
             "<vector id=\"v2i64\" type=\"int64\" count=\"2\"/>\n"
             "<union id=\"vec128\"><field name=\"v4_float\" type=\"v4f\"/>"
             "<field name=\"v2_double\" type=\"v2d\"/><field name=\"v16_int8\" type=\"v16i8\"/>"
             "<field name=\"v8_int16\" type=\"v8i16\"/><field name=\"v4_int32\" type=\"v4i32\"/>"
             "<field name=\"v2_int64\" type=\"v2i64\"/><field name=\"uint128\" "
             "type=\"uint128\"/></union>\n";
      }
    }
    const char* type = d.type;
    std::string t = std::strcmp(type, "int") == 0 ? "int" + std::to_string(d.size * 8) : type;
    x += "<reg name=\"" + std::string(d.name) + "\" bitsize=\"" + std::to_string(d.size * 8) +
         "\" type=\"" + t + "\" regnum=\"" + std::to_string(i) + "\"/>\n";
  }
  if (open) x += "</feature>\n";
  x += "</target>\n";
  return x;
}

const uint8_t* at(const X86State& s, size_t off) {
  return reinterpret_cast<const uint8_t*>(&s) + off;  // NOLINT: offsets from the table
}
uint8_t* at(X86State& s, size_t off) {
  return reinterpret_cast<uint8_t*>(&s) + off;  // NOLINT
}

}  // namespace

const std::vector<RegDesc>& registers(Arch a) {
  static const std::vector<RegDesc> k64 = build(Arch::kX86_64);
  static const std::vector<RegDesc> k32 = build(Arch::kI386);
  return a == Arch::kX86_64 ? k64 : k32;
}

const std::string& target_xml(Arch a) {
  static const std::string k64 = build_xml(Arch::kX86_64);
  static const std::string k32 = build_xml(Arch::kI386);
  return a == Arch::kX86_64 ? k64 : k32;
}

std::string encode_all(const X86State& s, Arch a) {
  std::string out;
  for (const RegDesc& d : registers(a))
    out += to_hex(std::span<const uint8_t>(at(s, d.offset), d.size));
  return out;
}

bool decode_all(std::string_view hex, X86State& s, Arch a) {
  size_t total = 0;
  for (const RegDesc& d : registers(a)) total += d.size;
  auto bytes = parse_hex_bytes(hex);
  // GDB may send fewer registers than it knows (a short G): take what is there, whole registers.
  if (!bytes || bytes->size() > total) return false;
  X86State t = s;
  size_t pos = 0;
  for (const RegDesc& d : registers(a)) {
    if (pos + d.size > bytes->size()) break;
    std::memcpy(at(t, d.offset), bytes->data() + pos, d.size);
    pos += d.size;
  }
  if (pos != bytes->size()) return false;
  s = t;
  return true;
}

std::optional<std::string> encode_one(const X86State& s, Arch a, size_t n) {
  const auto& regs = registers(a);
  if (n >= regs.size()) return std::nullopt;
  return to_hex(std::span<const uint8_t>(at(s, regs[n].offset), regs[n].size));
}

bool decode_one(std::string_view hex, X86State& s, Arch a, size_t n) {
  const auto& regs = registers(a);
  if (n >= regs.size()) return false;
  auto bytes = parse_hex_bytes(hex);
  if (!bytes || bytes->size() != regs[n].size) return false;
  std::memcpy(at(s, regs[n].offset), bytes->data(), regs[n].size);
  return true;
}

size_t pc_regnum(Arch a) {
  return a == Arch::kX86_64 ? 16 : 8;
}

}  // namespace qvm::gdb
