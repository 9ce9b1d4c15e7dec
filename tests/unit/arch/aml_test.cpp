#include "arch/x86/aml.hpp"

#include <gtest/gtest.h>

namespace qvm::arch::x86::aml {
namespace {

TEST(Aml, PkgLengthEncodings) {
  EXPECT_EQ(pkg_length(0), (Bytes{0x01}));
  EXPECT_EQ(pkg_length(62), (Bytes{0x3f}));
  // 63 + 2 = 65 = 0x41: lead byte 0x40 | low nibble 1, then 0x04.
  EXPECT_EQ(pkg_length(63), (Bytes{0x41, 0x04}));
  EXPECT_EQ(pkg_length(0xffd), (Bytes{0x4f, 0xff}));        // 0xfff fits two bytes
  EXPECT_EQ(pkg_length(0xffe), (Bytes{0x81, 0x00, 0x01}));  // 0x1001 needs three
}

TEST(Aml, Integers) {
  EXPECT_EQ(integer(0), (Bytes{0x00}));
  EXPECT_EQ(integer(1), (Bytes{0x01}));
  EXPECT_EQ(integer(5), (Bytes{0x0a, 0x05}));
  EXPECT_EQ(integer(0x1234), (Bytes{0x0b, 0x34, 0x12}));
  EXPECT_EQ(integer(0xfec00000), (Bytes{0x0c, 0x00, 0x00, 0xc0, 0xfe}));
  EXPECT_EQ(integer(1ull << 32), (Bytes{0x0e, 0, 0, 0, 0, 1, 0, 0, 0}));
}

TEST(Aml, NamesAndEisaId) {
  EXPECT_EQ(name_string("_SB"), (Bytes{'_', 'S', 'B', '_'}));
  EXPECT_EQ(name_string("\\_S5"), (Bytes{'\\', '_', 'S', '5', '_'}));
  EXPECT_EQ(name_string("\\_SB.COM1"), (Bytes{'\\', 0x2e, '_', 'S', 'B', '_', 'C', 'O', 'M', '1'}));
  EXPECT_TRUE(is_name_seg("COM1"));
  EXPECT_FALSE(is_name_seg("1COM"));
  EXPECT_FALSE(is_name_seg("com1"));
  // EISAID("PNP0501") == 0x0105D041 (ACPI 6.4 §6.1.5 example).
  EXPECT_EQ(eisa_id("PNP0501"), (Bytes{0x0c, 0x41, 0xd0, 0x05, 0x01}));
  EXPECT_TRUE(is_eisa_id("PNP0B00"));
  EXPECT_FALSE(is_eisa_id("PNP0G00"));
  EXPECT_FALSE(is_eisa_id("LNRO0005"));
}

TEST(Aml, ResourceTemplateSumsToZero) {
  Bytes b = ResourceTemplate().io(0x3f8, 8).irq_no_flags(4).build();
  // Buffer(PkgLength, BufferSize, IO(8) IRQ(3) End(2)).
  ASSERT_EQ(b[0], 0x11);
  Bytes tmpl(b.end() - 13, b.end());
  EXPECT_EQ(tmpl[0], 0x47);
  EXPECT_EQ(tmpl[8], 0x22);
  EXPECT_EQ(tmpl[9], 0x10);  // IRQ 4 mask
  EXPECT_EQ(tmpl[11], 0x79);
  uint8_t sum = 0;
  for (uint8_t x : tmpl) sum = static_cast<uint8_t>(sum + x);
  EXPECT_EQ(sum, 0);
}

TEST(Aml, DeviceWrapsChildren) {
  std::vector<Bytes> kids{name("_UID", integer(0))};
  Bytes d = device("COM1", kids);
  // ExtOp DeviceOp PkgLength "COM1" NameOp "_UID" ZeroOp
  EXPECT_EQ(d, (Bytes{0x5b, 0x82, 0x0b, 'C', 'O', 'M', '1', 0x08, '_', 'U', 'I', 'D', 0x00}));
}

}  // namespace
}  // namespace qvm::arch::x86::aml
