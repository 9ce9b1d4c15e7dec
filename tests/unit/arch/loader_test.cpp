#include "arch/x86/loader.hpp"

#include <gtest/gtest.h>

#include "image_builder.hpp"
#include "loader_fixture.hpp"
#include "test_util.hpp"

namespace qvm::arch::x86 {
namespace {

using testing::make_elf;
using testing::pvh_note;
using testing::Seg;

using LoaderTest = testing::LoaderFixture;

// Code at file offset 0x1000 -> 1 MiB, 0x2000 bytes of memory (bss), PVH note at 0x1010.
std::vector<uint8_t> pvh_elf(bool is64, int desc_size = 8) {
  std::vector<uint8_t> body(16, 0x90);
  auto note = pvh_note(0x100004, desc_size);
  body.insert(body.end(), note.begin(), note.end());
  return make_elf(is64, 0xffffffff81000000ull,
                  {{1, 0x1000, 0x100000, 16, 0x2000}, {4, 0x1010, 0, note.size(), note.size()}},
                  body);
}

TEST_F(LoaderTest, Detects) {
  EXPECT_EQ(detect_image(pvh_elf(true)), ImageKind::kElf);
  EXPECT_EQ(detect_image(testing::make_bzimage(0x20f, 1, {1, 2, 3})), ImageKind::kBzImage);
  EXPECT_EQ(detect_image(std::vector<uint8_t>{0xf4}), ImageKind::kRaw);
  EXPECT_EQ(detect_image(std::vector<uint8_t>{}), ImageKind::kRaw);
}

TEST_F(LoaderTest, PvhElf64) {
  std::vector<uint8_t> initrd(0x3000, 0x5a);
  in.initrd = initrd;
  auto p = load(pvh_elf(true));
  ASSERT_TRUE(p.ok()) << p.error().message;
  EXPECT_EQ(p->mode, BootPlan::Mode::kPvh32);
  EXPECT_EQ(p->entry, 0x100004u);
  EXPECT_EQ(p->rbx, kStartInfoAddr);
  EXPECT_EQ(at<uint8_t>(0x100000), 0x90);
  EXPECT_EQ(at<uint8_t>(0x100010), 0);  // bss zeroed
  EXPECT_EQ(at<uint8_t>(0x101fff), 0);
  EXPECT_EQ(at<uint8_t>(0x102000), 0xaa);  // not beyond p_memsz
  // hvm_start_info
  EXPECT_EQ(at<uint32_t>(0x6000), 0x336ec578u);
  EXPECT_EQ(at<uint32_t>(0x6004), 1u);
  EXPECT_EQ(at<uint32_t>(0x600c), 1u);  // nr_modules
  uint64_t modlist = at<uint64_t>(0x6010);
  EXPECT_EQ(at<uint64_t>(modlist), p->initrd_addr);
  EXPECT_EQ(at<uint64_t>(modlist + 8), 0x3000u);
  EXPECT_EQ(p->initrd_addr, testing::kRamSize - 0x3000);  // highest page-aligned fit
  EXPECT_EQ(at<uint8_t>(p->initrd_addr), 0x5a);
  uint64_t cmdline = at<uint64_t>(0x6018);
  EXPECT_EQ(at<uint8_t>(cmdline), 'c');
  EXPECT_EQ(at<uint8_t>(cmdline + 13), 0);
  EXPECT_EQ(at<uint64_t>(0x6020), 0xe0000u);  // rsdp_paddr
  uint64_t memmap = at<uint64_t>(0x6028);
  ASSERT_EQ(at<uint32_t>(0x6030), map.size());
  EXPECT_EQ(at<uint64_t>(memmap + 24 * 2), map[2].addr);
  EXPECT_EQ(at<uint32_t>(memmap + 24 * 2 + 16), 1u);
  // GDT
  EXPECT_EQ(at<uint64_t>(kGdtAddr + kCode32Selector), 0x00cf9b000000ffffull);
  EXPECT_EQ(at<uint64_t>(kGdtAddr + kDataSelector), 0x00cf93000000ffffull);
}

TEST_F(LoaderTest, PvhElf32WithFourByteNote) {
  auto p = load(pvh_elf(false, 4));
  ASSERT_TRUE(p.ok()) << p.error().message;
  EXPECT_EQ(p->mode, BootPlan::Mode::kPvh32);
  EXPECT_EQ(p->entry, 0x100004u);
}

TEST_F(LoaderTest, PlainElf64GetsPageTables) {
  auto img = make_elf(true, 0x100000, {{1, 0x1000, 0x100000, 4, 4}}, {0xf4, 0, 0, 0});
  auto p = load(img);
  ASSERT_TRUE(p.ok()) << p.error().message;
  EXPECT_EQ(p->mode, BootPlan::Mode::kElf64);
  EXPECT_EQ(p->entry, 0x100000u);
  EXPECT_EQ(p->cr3, kPml4Addr);
  EXPECT_EQ(at<uint64_t>(kPml4Addr), (kPml4Addr + 0x1000) | 3);
  EXPECT_EQ(at<uint64_t>(kPml4Addr + 0x1000 + 8 * 3), (kPml4Addr + 0x5000) | 3);
  EXPECT_EQ(at<uint64_t>(kPml4Addr + 0x5000 + 8 * 511), 0xffe00000ull | 0x83);
  EXPECT_EQ(at<uint64_t>(kGdtAddr + kCode64Selector), 0x00af9b000000ffffull);
  // A plain ELF64 whose entry is a high virtual address cannot run identity-mapped.
  EXPECT_FALSE(
      load(make_elf(true, 0xffffffff81000000ull, {{1, 0x1000, 0x100000, 4, 4}}, {0xf4, 0, 0, 0}))
          .ok());
}

TEST_F(LoaderTest, RawImage) {
  std::vector<uint8_t> raw{0xfa, 0xf4};
  in.load_addr = 0x200000;
  auto p = load(raw);
  ASSERT_TRUE(p.ok()) << p.error().message;
  EXPECT_EQ(p->mode, BootPlan::Mode::kRaw);
  EXPECT_EQ(p->entry, 0x200000u);
  EXPECT_EQ(at<uint8_t>(0x200001), 0xf4);
  in.load_addr.reset();
  EXPECT_EQ(load(raw)->entry, kDefaultRawAddr);
  in.load_addr = testing::kRamSize - 1;  // runs off the end of guest memory
  EXPECT_FALSE(load(raw).ok());
  in.load_addr = 0x1010;  // over the GDT
  EXPECT_FALSE(load(raw).ok());
}

TEST_F(LoaderTest, MalformedElf) {
  auto good = pvh_elf(true);
  // Truncated header.
  EXPECT_FALSE(load(std::vector<uint8_t>(good.begin(), good.begin() + 40)).ok());
  EXPECT_FALSE(load(std::vector<uint8_t>(good.begin(), good.begin() + 60)).ok());
  // Program headers outside the file.
  auto b = good;
  testing::put_le(b, 32, 0xfffffffffffffff0ull, 8);
  EXPECT_FALSE(load(b).ok());
  b = good;
  testing::put_le(b, 56, 0xffff, 2);  // e_phnum
  EXPECT_FALSE(load(b).ok());
  b = good;
  testing::put_le(b, 54, 8, 2);  // e_phentsize too small
  EXPECT_FALSE(load(b).ok());
  // Wrong machine / class / endianness.
  b = good;
  b[18] = 40;
  EXPECT_FALSE(load(b).ok());
  b = good;
  b[4] = 3;
  EXPECT_FALSE(load(b).ok());
  b = good;
  b[5] = 2;
  EXPECT_FALSE(load(b).ok());

  auto one = [&](Seg s) { return load(make_elf(true, 0x100000, {s}, std::vector<uint8_t>(16))); };
  EXPECT_TRUE(one({1, 0x1000, 0x100000, 16, 16}).ok());
  EXPECT_FALSE(one({1, 0x1000, 0x100000, 0x20, 0x20}).ok());                   // data past EOF
  EXPECT_FALSE(one({1, 0xffffffffffffff00ull, 0x100000, 0x200, 0x200}).ok());  // offset wraps
  EXPECT_FALSE(one({1, 0x1000, 0x100000, 16, 8}).ok());                        // filesz > memsz
  EXPECT_FALSE(one({1, 0x1000, 64ull << 20, 16, 16}).ok());                    // outside guest RAM
  EXPECT_FALSE(one({1, 0x1000, 0x100000, 16, 0xffffffffffffull}).ok());        // huge p_memsz
  EXPECT_FALSE(one({1, 0x1000, 0xfffffffffffff000ull, 16, 0x2000}).ok());      // paddr wraps
  EXPECT_FALSE(one({1, 0x1000, 0xa0000, 16, 16}).ok());                        // reserved hole
  EXPECT_FALSE(one({1, 0x1000, 0x6000, 16, 16}).ok());                         // boot data area
  EXPECT_FALSE(one({4, 0x1000, 0, 16, 16}).ok());                              // no PT_LOAD
  // A note whose sizes run past its segment.
  std::vector<uint8_t> note = pvh_note(0x100000);
  testing::put_le(note, 4, 0x1000, 4);  // descsz
  EXPECT_FALSE(
      load(make_elf(true, 0x100000,
                    {{1, 0x1000, 0x100000, 16, 16}, {4, 0x1000, 0, note.size(), note.size()}},
                    note))
          .ok());
  // PVH entry above 4 GiB.
  EXPECT_FALSE(
      load(make_elf(true, 0x100000, {{1, 0x1000, 0x100000, 24, 24}, {4, 0x1000, 0, 24, 24}},
                    pvh_note(1ull << 32)))
          .ok());
}

TEST_F(LoaderTest, InitrdAndCmdlineErrors) {
  std::vector<uint8_t> huge(testing::kRamSize, 1);
  in.initrd = huge;
  EXPECT_FALSE(load(pvh_elf(true)).ok());
  std::vector<uint8_t> empty;
  in.initrd = empty;
  EXPECT_FALSE(load(pvh_elf(true)).ok());
  in.initrd.reset();
  std::string nul("a\0b", 3);
  in.cmdline = nul;
  EXPECT_FALSE(load(pvh_elf(true)).ok());
  std::string longline(kCmdlineMax, 'x');
  in.cmdline = longline;
  EXPECT_FALSE(load(pvh_elf(true)).ok());
}

}  // namespace
}  // namespace qvm::arch::x86
