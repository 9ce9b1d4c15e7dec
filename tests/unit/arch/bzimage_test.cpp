#include <gtest/gtest.h>

#include "arch/x86/loader.hpp"
#include "image_builder.hpp"
#include "test_util.hpp"

namespace qvm::arch::x86 {
namespace {

using testing::make_bzimage;

class BzImageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    mem = testing::small_memory();
    map = e820(testing::small_layout());
    in.e820 = map;
    in.cmdline = "console=ttyS0 root=/dev/vda";
    in.rsdp_addr = 0xe0000;
  }
  Result<BootPlan> load(const std::vector<uint8_t>& image) {
    in.image = image;
    return load_kernel(in, mem);
  }
  template <typename T>
  T zp(uint64_t off) {
    auto v = mem.read_obj<T>(kZeroPageAddr + off);
    EXPECT_TRUE(v.ok());
    return v.ok() ? *v : T{};
  }
  memory::GuestMemory mem;
  std::vector<E820Entry> map;
  LoadInput in;
  std::vector<uint8_t> kernel = std::vector<uint8_t>(0x3000, 0xcc);
};

TEST_F(BzImageTest, LoadsAtPrefAddressAndFillsZeroPage) {
  std::vector<uint8_t> initrd(0x1800, 0x77);
  in.initrd = initrd;
  auto p = load(make_bzimage(0x20f, 4, kernel, 0x1000000, 0x400000));
  ASSERT_TRUE(p.ok()) << p.error().message;
  EXPECT_EQ(p->mode, BootPlan::Mode::kLinux32);
  EXPECT_EQ(p->entry, 0x1000000u);
  EXPECT_EQ(p->rsi, kZeroPageAddr);
  EXPECT_EQ(p->kernel_end, 0x1400000u);  // init_size counts
  EXPECT_EQ(*mem.read_obj<uint8_t>(0x1000000), 0xcc);
  EXPECT_EQ(zp<uint32_t>(0x202), 0x53726448u);  // setup header copied
  EXPECT_EQ(zp<uint16_t>(0x206), 0x20f);
  EXPECT_EQ(zp<uint8_t>(0x210), 0xff);         // type_of_loader
  EXPECT_EQ(zp<uint32_t>(0x214), 0x1000000u);  // code32_start
  uint32_t cmd = zp<uint32_t>(0x228);
  EXPECT_EQ(cmd, kCmdlineAddr);
  EXPECT_EQ(*mem.read_obj<uint8_t>(cmd + 27), 0);
  EXPECT_EQ(zp<uint32_t>(0x21c), 0x1800u);
  uint32_t rd = zp<uint32_t>(0x218);
  EXPECT_EQ(rd, (testing::kRamSize - 0x1800) & ~0xfffull);
  EXPECT_EQ(*mem.read_obj<uint8_t>(rd), 0x77);
  EXPECT_EQ(zp<uint8_t>(0x1e8), map.size());
  EXPECT_EQ(zp<uint64_t>(0x2d0 + 20 * 2), map[2].addr);
  EXPECT_EQ(zp<uint32_t>(0x2d0 + 20 * 1 + 16), 2u);  // reserved
  EXPECT_EQ(zp<uint64_t>(0x70), 0xe0000u);           // acpi_rsdp_addr (2.14+)
}

TEST_F(BzImageTest, FallsBackToOneMiB) {
  // pref_address beyond RAM, and an old protocol without pref_address / acpi_rsdp_addr.
  auto p = load(make_bzimage(0x20f, 4, kernel, 0x4000000, 0x100000));
  ASSERT_TRUE(p.ok()) << p.error().message;
  EXPECT_EQ(p->entry, 0x100000u);
  p = load(make_bzimage(0x206, 0, kernel));  // setup_sects 0 means 4
  ASSERT_TRUE(p.ok()) << p.error().message;
  EXPECT_EQ(p->entry, 0x100000u);
  EXPECT_EQ(zp<uint64_t>(0x70), 0u);
}

TEST_F(BzImageTest, InitrdBelowInitrdAddrMax) {
  auto img = make_bzimage(0x20f, 4, kernel, 0x1000000, 0x400000);
  testing::put_le(img, 0x22c, 0x17fffff, 4);  // initrd must end at or below 24 MiB
  std::vector<uint8_t> initrd(0x1000, 1);
  in.initrd = initrd;
  auto p = load(img);
  ASSERT_TRUE(p.ok()) << p.error().message;
  EXPECT_EQ(p->initrd_addr, 0x1800000u - 0x1000);
  testing::put_le(img, 0x22c, 0x13fffff, 4);  // only room below the kernel: refused
  EXPECT_FALSE(load(img).ok());
}

TEST_F(BzImageTest, MalformedImages) {
  auto good = make_bzimage(0x20f, 4, kernel, 0x1000000, 0x400000);
  ASSERT_TRUE(load(good).ok());
  auto b = good;
  b.resize(0x230);  // truncated setup header (ends at 0x268)
  EXPECT_FALSE(load(b).ok());
  b = good;
  b.resize(5 * 512);  // no protected-mode kernel
  EXPECT_FALSE(load(b).ok());
  b = good;
  b[0x1f1] = 200;  // setup_sects past the end of the file
  EXPECT_FALSE(load(b).ok());
  b = good;
  b[0x1fe] = 0;  // boot_flag
  EXPECT_FALSE(load(b).ok());
  b = good;
  testing::put_le(b, 0x206, 0x205, 2);  // protocol too old
  EXPECT_FALSE(load(b).ok());
  b = good;
  b[0x211] = 0;  // zImage
  EXPECT_FALSE(load(b).ok());
  b = good;
  testing::put_le(b, 0x260, 0x40000000, 4);  // init_size larger than RAM
  EXPECT_FALSE(load(b).ok());
  b = good;
  testing::put_le(b, 0x238, 8, 4);  // cmdline_size smaller than our command line
  EXPECT_FALSE(load(b).ok());
}

}  // namespace
}  // namespace qvm::arch::x86
