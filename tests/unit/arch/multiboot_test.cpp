// Multiboot v1 loading (src/arch/x86/loader_multiboot.cpp): the header's address fields, ELF32,
// the boot information a kernel reads, and the header fields a hostile image can get wrong.
#include <gtest/gtest.h>

#include <string>

#include "arch/x86/loader.hpp"
#include "image_builder.hpp"
#include "loader_fixture.hpp"
#include "test_util.hpp"

namespace qvm::arch::x86 {
namespace {

using testing::make_elf;
using testing::put_le;

constexpr uint32_t kMagic = 0x1badb002;

// A multiboot header at `off` of `b` with the given flags and address fields.
void put_header(std::vector<uint8_t>& b, size_t off, uint32_t flags,
                std::array<uint32_t, 5> addrs = {}) {
  put_le(b, off, kMagic, 4);
  put_le(b, off + 4, flags, 4);
  put_le(b, off + 8, static_cast<uint32_t>(0u - kMagic - flags), 4);
  for (size_t i = 0; i < addrs.size(); i++) put_le(b, off + 12 + 4 * i, addrs[i], 4);
}

// 0x2000 bytes loaded at 1 MiB through the address fields, bss to 0x104000, entry 0x100080.
std::vector<uint8_t> kludge_image(uint32_t load_end = 0, uint32_t bss_end = 0x104000) {
  std::vector<uint8_t> b(0x2000);
  for (size_t i = 0; i < b.size(); i++) b[i] = static_cast<uint8_t>(i * 7 + 1);
  put_header(b, 0x40, 0x10003, {0x100040, 0x100000, load_end, bss_end, 0x100080});
  return b;
}

class MultibootTest : public testing::LoaderFixture {
 protected:
  void SetUp() override {
    LoaderFixture::SetUp();
    in.cmdline = "kernel.bin console=ttyS0";
    in.rsdp_addr = 0;
  }
};

TEST_F(MultibootTest, AddressFieldsInfoAndModules) {
  std::vector<uint8_t> m0(0x3000, 0x11), m1(10, 0x22);
  std::vector<BootModule> mods{{m0, "/boot/a.bin x=1"}, {m1, "b"}};
  in.modules = mods;
  auto img = kludge_image();
  EXPECT_EQ(detect_image(img), ImageKind::kMultiboot);
  auto p = load(img);
  ASSERT_TRUE(p.ok()) << p.error().message;
  EXPECT_EQ(p->mode, BootPlan::Mode::kMultiboot);
  EXPECT_STREQ(boot_mode_name(p->mode), "multiboot");
  EXPECT_EQ(p->rax, 0x2badb002u);
  EXPECT_EQ(p->entry, 0x100080u);
  EXPECT_EQ(at<uint8_t>(0x100000), img[0]);
  EXPECT_EQ(at<uint8_t>(0x101fff), img[0x1fff]);
  EXPECT_EQ(at<uint8_t>(0x102000), 0);  // bss zeroed up to bss_end_addr
  EXPECT_EQ(at<uint8_t>(0x103fff), 0);

  const uint64_t mbi = p->rbx;
  EXPECT_EQ(at<uint32_t>(mbi), 0x24du);    // memory, cmdline, mods, mmap, loader name
  EXPECT_EQ(at<uint32_t>(mbi + 4), 639u);  // 0-0x9fc00 in KiB
  EXPECT_EQ(at<uint32_t>(mbi + 8), (testing::kRamSize >> 10) - 1024);  // from 1 MiB
  EXPECT_EQ(str(at<uint32_t>(mbi + 16)), "kernel.bin console=ttyS0");
  ASSERT_EQ(at<uint32_t>(mbi + 20), 2u);
  const uint64_t ml = at<uint32_t>(mbi + 24);
  EXPECT_EQ(at<uint32_t>(ml), 0x104000u);  // page-aligned above bss_end
  EXPECT_EQ(at<uint32_t>(ml + 4), 0x107000u);
  EXPECT_EQ(str(at<uint32_t>(ml + 8)), "/boot/a.bin x=1");
  EXPECT_EQ(at<uint8_t>(0x104000), 0x11);
  EXPECT_EQ(at<uint32_t>(ml + 16), 0x107000u);
  EXPECT_EQ(at<uint32_t>(ml + 20), 0x10700au);
  EXPECT_EQ(str(at<uint32_t>(ml + 24)), "b");
  EXPECT_EQ(at<uint8_t>(0x107009), 0x22);
  EXPECT_EQ(p->initrd_addr, 0x104000u);

  // The memory map: qvm's E820, each entry's size field 20.
  const uint32_t len = at<uint32_t>(mbi + 44);
  const uint64_t mm = at<uint32_t>(mbi + 48);
  ASSERT_EQ(len, map.size() * 24);
  for (size_t i = 0; i < map.size(); i++) {
    EXPECT_EQ(at<uint32_t>(mm + 24 * i), 20u);
    EXPECT_EQ(at<uint64_t>(mm + 24 * i + 4), map[i].addr);
    EXPECT_EQ(at<uint64_t>(mm + 24 * i + 12), map[i].size);
    EXPECT_EQ(at<uint32_t>(mm + 24 * i + 20), static_cast<uint32_t>(map[i].type));
  }
  EXPECT_EQ(str(at<uint32_t>(mbi + 64)), "qvm");
}

TEST_F(MultibootTest, LoadEndAddrLimitsTheCopy) {
  auto p = load(kludge_image(0x101000, 0));
  ASSERT_TRUE(p.ok()) << p.error().message;
  EXPECT_EQ(p->kernel_end, 0x101000u);
  EXPECT_EQ(at<uint8_t>(0x101000), 0xaa);  // not copied, no bss
}

TEST_F(MultibootTest, Elf32UsesEntryNotPvhNote) {
  std::vector<uint8_t> body(0x100, 0x90);
  put_header(body, 0x10, 0x3);
  auto note = testing::pvh_note(0x100020, 4);
  body.insert(body.end(), note.begin(), note.end());
  auto img = make_elf(
      false, 0x100004,
      {{1, 0x1000, 0x100000, 0x100, 0x1000}, {4, 0x1100, 0, note.size(), note.size()}}, body);
  auto p = load(img);
  ASSERT_TRUE(p.ok()) << p.error().message;
  EXPECT_EQ(p->mode, BootPlan::Mode::kMultiboot);
  EXPECT_EQ(p->entry, 0x100004u);
  EXPECT_EQ(at<uint32_t>(0x100010), kMagic);
  EXPECT_EQ(at<uint8_t>(0x100100), 0);  // p_memsz past p_filesz zeroed
}

TEST_F(MultibootTest, Elf64WithoutAddressFieldsBootsAsElf64) {
  std::vector<uint8_t> body(0x100, 0x90);
  put_header(body, 0x10, 0x3);
  auto img = make_elf(true, 0x100000, {{1, 0x1000, 0x100000, 0x100, 0x100}}, body);
  EXPECT_EQ(detect_image(img), ImageKind::kElf);
  auto p = load(img);
  ASSERT_TRUE(p.ok()) << p.error().message;
  EXPECT_EQ(p->mode, BootPlan::Mode::kElf64);
}

TEST_F(MultibootTest, HeaderMustBeValidAndEarly) {
  auto img = kludge_image();
  img[0x48] ^= 1;  // checksum
  EXPECT_EQ(detect_image(img), ImageKind::kRaw);
  std::vector<uint8_t> late(0x3000, 0);
  put_header(late, 0x2000, 0x10003, {0x102000, 0x100000, 0, 0, 0x100000});
  EXPECT_EQ(detect_image(late), ImageKind::kRaw);  // beyond the first 8 KiB
  std::vector<uint8_t> unaligned(0x100, 0);
  put_header(unaligned, 0x22, 0x10003, {0x100022, 0x100000, 0, 0, 0x100000});
  EXPECT_EQ(detect_image(unaligned), ImageKind::kRaw);
}

TEST_F(MultibootTest, RefusesBadHeaders) {
  std::vector<uint8_t> b(0x1000, 0);
  put_header(b, 0, 0x10008, {0x100000, 0x100000, 0, 0, 0x100000});  // requirement bit 3
  auto p = load(b);
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.error().message.find("requires features"), std::string::npos);

  put_header(b, 0, 0x10000, {0x100000, 0x100010, 0, 0, 0x100000});  // header_addr < load_addr
  EXPECT_FALSE(load(b).ok());
  put_header(b, 0, 0x10000, {0x200000, 0x100000, 0, 0, 0x100000});  // offset would be negative
  EXPECT_FALSE(load(b).ok());
  put_header(b, 0, 0x10000, {0x100000, 0x100000, 0x102000, 0, 0x100000});  // past the file
  EXPECT_FALSE(load(b).ok());
  put_header(b, 0, 0x10000, {0x100000, 0x100000, 0, 0x100800, 0x100000});  // bss below end
  EXPECT_FALSE(load(b).ok());
  put_header(b, 0, 0x10000, {0x2000, 0x2000, 0, 0, 0x2000});  // into the boot data area
  EXPECT_FALSE(load(b).ok());
  put_header(b, 0, 0x10000, {0xfffff000, 0xfffff000, 0, 0, 0xfffff000});  // outside RAM
  EXPECT_FALSE(load(b).ok());
  put_header(b, 0, 0x10000, {0x100000, 0x100000, 0, 0, 0x100000});
  EXPECT_TRUE(load(b).ok());
}

TEST_F(MultibootTest, ModulesNeedMultibootAndRoom) {
  std::vector<uint8_t> m(16, 1);
  std::vector<BootModule> mods{{m, "m"}};
  in.modules = mods;
  std::vector<uint8_t> raw{0xf4};
  auto p = load(raw);
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.error().message.find("multiboot"), std::string::npos);

  std::vector<uint8_t> huge(testing::kRamSize, 0);
  std::vector<BootModule> big{{huge, "huge"}};
  in.modules = big;
  p = load(kludge_image());
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.error().message.find("does not fit"), std::string::npos);
}

TEST_F(MultibootTest, ModuleStringsShareTheCommandLineArea) {
  std::string s(kCmdlineMax, 'x');
  std::vector<uint8_t> m(16, 1);
  std::vector<BootModule> mods{{m, s}};
  in.modules = mods;
  auto p = load(kludge_image());
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.error().message.find("module string"), std::string::npos);
}

}  // namespace
}  // namespace qvm::arch::x86
