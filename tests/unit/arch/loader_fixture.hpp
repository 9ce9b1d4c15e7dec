// The fixture of the kernel-loader tests (loader_test, bzimage_test, multiboot_test): the small
// machine's guest memory filled with 0xaa (so zeroing is visible), its E820 map, and a LoadInput.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "arch/x86/loader.hpp"
#include "test_util.hpp"

namespace qvm::arch::x86::testing {

class LoaderFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    mem = small_memory();
    map = e820(small_layout());
    ASSERT_TRUE(mem.fill(0, 0xaa, kRamSize).ok());
    in.e820 = map;
    in.cmdline = "console=ttyS0";
    in.rsdp_addr = 0xe0000;
  }
  Result<BootPlan> load(const std::vector<uint8_t>& image) {
    in.image = image;
    return load_kernel(in, mem);
  }
  template <typename T>
  T at(uint64_t gpa) {
    auto v = mem.read_obj<T>(gpa);
    EXPECT_TRUE(v.ok());
    return v.ok() ? *v : T{};
  }
  // The NUL-terminated string at `gpa` (at most 4 KiB).
  std::string str(uint64_t gpa) {
    std::string s;
    for (uint64_t a = gpa; s.size() < 4096; a++) {
      const char c = static_cast<char>(at<uint8_t>(a));
      if (!c) break;
      s += c;
    }
    return s;
  }
  memory::GuestMemory mem;
  std::vector<E820Entry> map;
  LoadInput in;
};

}  // namespace qvm::arch::x86::testing
