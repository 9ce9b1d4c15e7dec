// x86 register layouts for GDB (src/gdb/x86_regs.*): one table drives `g`, `p`/`P` and the XML.
#include <gtest/gtest.h>

#include "gdb/packet.hpp"
#include "gdb/x86_regs.hpp"

namespace qvm::gdb {
namespace {

size_t total(Arch a) {
  size_t n = 0;
  for (const auto& r : registers(a)) n += r.size;
  return n;
}

X86State sample() {
  X86State s;
  for (int i = 0; i < 16; ++i)
    s.gpr[i] =
        uint64_t{0x1111111100000000} * static_cast<uint64_t>(i + 1) + static_cast<uint64_t>(i);
  s.rip = 0xffffffff81000000ull;
  s.rflags = 0x246;
  for (int i = 0; i < 6; ++i) s.seg[i] = static_cast<uint32_t>(8 * i);
  s.cr3 = 0x1000;
  s.xmm[3][15] = 0xab;
  s.st[7][9] = 0x7f;
  return s;
}

TEST(GdbRegs, AllRegistersRoundTripInBothLayouts) {
  for (Arch a : {Arch::kX86_64, Arch::kI386}) {
    const X86State s = sample();
    const std::string hex = encode_all(s, a);
    EXPECT_EQ(hex.size(), 2 * total(a));
    X86State t;
    ASSERT_TRUE(decode_all(hex, t, a));
    EXPECT_EQ(encode_all(t, a), hex);
  }
}

TEST(GdbRegs, X86_64OrderIsGdbsAndI386MapsToTheLowHalves) {
  const X86State s = sample();
  const auto& r64 = registers(Arch::kX86_64);
  EXPECT_STREQ(r64[0].name, "rax");
  EXPECT_STREQ(r64[7].name, "rsp");
  EXPECT_STREQ(r64[pc_regnum(Arch::kX86_64)].name, "rip");
  EXPECT_EQ(*encode_one(s, Arch::kX86_64, 16), "00000081ffffffff");
  const auto& r32 = registers(Arch::kI386);
  EXPECT_STREQ(r32[1].name, "ecx");
  EXPECT_STREQ(r32[pc_regnum(Arch::kI386)].name, "eip");
  // ecx is rcx's low 32 bits (gpr[2] = 0x3333333300000002).
  EXPECT_EQ(*encode_one(s, Arch::kI386, 1), "02000000");
  X86State t = s;
  ASSERT_TRUE(decode_one("78563412", t, Arch::kI386, 0));  // eax
  EXPECT_EQ(t.gpr[0], 0x1111111112345678ull);              // the upper half stays
}

TEST(GdbRegs, MalformedValuesChangeNothing) {
  X86State s = sample();
  const X86State before = s;
  EXPECT_FALSE(decode_all("zz", s, Arch::kX86_64));
  EXPECT_FALSE(decode_all(std::string(2 * total(Arch::kX86_64) + 2, '0'), s, Arch::kX86_64));
  EXPECT_FALSE(decode_all("123", s, Arch::kX86_64));    // not whole registers
  EXPECT_FALSE(decode_one("00", s, Arch::kX86_64, 0));  // wrong size
  EXPECT_FALSE(decode_one("0000000000000000", s, Arch::kX86_64, 9999));
  EXPECT_FALSE(encode_one(s, Arch::kI386, 9999));
  EXPECT_EQ(encode_all(s, Arch::kX86_64), encode_all(before, Arch::kX86_64));
}

TEST(GdbRegs, TargetDescriptionsNameEveryRegisterInOrder) {
  for (Arch a : {Arch::kX86_64, Arch::kI386}) {
    const std::string& x = target_xml(a);
    EXPECT_NE(x.find(a == Arch::kX86_64 ? "<architecture>i386:x86-64<" : "<architecture>i386<"),
              std::string::npos);
    EXPECT_NE(x.find("org.gnu.gdb.i386.core"), std::string::npos);
    size_t pos = 0;
    const auto& regs = registers(a);
    for (size_t i = 0; i < regs.size(); ++i) {
      const std::string tag = "<reg name=\"" + std::string(regs[i].name) + "\" bitsize=\"" +
                              std::to_string(regs[i].size * 8) + "\"";
      size_t at = x.find(tag, pos);
      ASSERT_NE(at, std::string::npos) << regs[i].name;
      EXPECT_NE(x.find("regnum=\"" + std::to_string(i) + "\"", at), std::string::npos);
      pos = at;
    }
  }
}

}  // namespace
}  // namespace qvm::gdb
