#include "fdt/fdt.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

namespace qvm::fdt {
namespace {

FdtMachine sample() {
  FdtMachine m;
  m.num_cpus = 2;
  m.memory = {{0, 0x9fc00}, {0x100000, 0x7f00000}};
  m.bootargs = "console=ttyS0";
  m.stdout_path = "/serial@3f8";
  m.initrd = FdtRange{0x7000000, 0x100000};
  m.intc.reg = {0xfec00000, 0x1000};
  m.devices = {{"serial", "ns16550a", {0x3f8, 8}, {4, 3}, 1843200},
               {"virtio_mmio", "virtio,mmio", {0xd0000000, 0x200}, {16, 3}, std::nullopt},
               {"virtio_mmio", "virtio,mmio", {0xd0000200, 0x200}, {17, 3}, std::nullopt}};
  return m;
}

TEST(Fdt, BuildsAValidBlob) {
  auto b = build_fdt(sample());
  ASSERT_TRUE(b.ok()) << b.error().message;
  ASSERT_GE(b->size(), 40u);
  EXPECT_EQ((*b)[0], 0xd0);  // magic 0xd00dfeed, big-endian
  EXPECT_EQ((*b)[3], 0xed);
}

TEST(Fdt, RejectsBadInput) {
  auto m = sample();
  m.devices[0].interrupts = {4};  // not a multiple of #interrupt-cells
  EXPECT_FALSE(build_fdt(m).ok());
  m = sample();
  m.devices[1].compatible.clear();
  EXPECT_FALSE(build_fdt(m).ok());
}

TEST(Fdt, GrowsForLargeTrees) {
  auto m = sample();
  m.bootargs = std::string(40000, 'x');
  auto b = build_fdt(m);
  ASSERT_TRUE(b.ok()) << b.error().message;
  EXPECT_GT(b->size(), 40000u);
}

// dtc must read the blob back without any warning or error.
TEST(FdtDtc, DecompilesCleanly) {
  if (std::system("dtc --version >/dev/null 2>&1") != 0) GTEST_SKIP() << "dtc not installed";
  auto b = build_fdt(sample());
  ASSERT_TRUE(b.ok());
  char path[] = "/tmp/qvm-fdt-XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(write(fd, b->data(), b->size()), static_cast<ssize_t>(b->size()));
  close(fd);
  std::string cmd = std::string("dtc -I dtb -O dts ") + path + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[512];
  while (fgets(buf, sizeof buf, p)) out += buf;
  EXPECT_EQ(pclose(p), 0) << out;
  unlink(path);
  EXPECT_EQ(out.find("Warning"), std::string::npos) << out;
  EXPECT_EQ(out.find("ERROR"), std::string::npos) << out;
  EXPECT_NE(out.find("bootargs = \"console=ttyS0\""), std::string::npos) << out;
  EXPECT_NE(out.find("serial@3f8"), std::string::npos) << out;
  EXPECT_NE(out.find("cpu@1"), std::string::npos) << out;
}

}  // namespace
}  // namespace qvm::fdt
