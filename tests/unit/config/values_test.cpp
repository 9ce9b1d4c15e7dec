#include "config/values.hpp"

#include <gtest/gtest.h>

namespace qvm::config {
namespace {

TEST(Numbers, Forms) {
  EXPECT_EQ(*parse_number("0"), 0u);
  EXPECT_EQ(*parse_number("4096"), 4096u);
  EXPECT_EQ(*parse_number("0xa0000"), 0xa0000u);
  EXPECT_EQ(*parse_number("0XFF"), 0xffu);
  EXPECT_EQ(*parse_number("0d16384"), 16384u);
  EXPECT_EQ(*parse_number("16M"), 16u << 20);
  EXPECT_EQ(*parse_number("32m"), 32u << 20);
  EXPECT_EQ(*parse_number("4K"), 4096u);
  EXPECT_EQ(*parse_number("4k"), 4096u);
  EXPECT_EQ(*parse_number("1G"), 1u << 30);
  EXPECT_EQ(*parse_number("2g"), 2ull << 30);
  EXPECT_EQ(*parse_number("0x10k"), 16u << 10);
  EXPECT_EQ(*parse_number("18446744073709551615"), UINT64_MAX);
}

TEST(Numbers, Errors) {
  for (auto bad : {"", "x", "0x", "0d", "12q", "1.5", "-1", "k", "0x1z", "0dff", " 1"}) {
    auto r = parse_number(bad);
    EXPECT_FALSE(r.ok()) << bad;
  }
  EXPECT_NE(parse_number("abc").error().message.find("expected a number"), std::string::npos);
  EXPECT_NE(parse_number("18446744073709551616").error().message.find("too large"),
            std::string::npos);
  EXPECT_NE(parse_number("0xffffffffffffffffk").error().message.find("too large"),
            std::string::npos);
  EXPECT_FALSE(parse_number("17179869184G").ok());
}

TEST(Bools, AllSpellings) {
  for (auto t : {"on", "1", "yes", "true", "ON", "Yes", "TRUE"}) EXPECT_TRUE(*parse_bool(t)) << t;
  for (auto f : {"off", "0", "no", "false", "OFF", "No"}) EXPECT_FALSE(*parse_bool(f)) << f;
  EXPECT_FALSE(parse_bool("maybe").ok());
  EXPECT_FALSE(parse_bool("").ok());
}

TEST(Locations, MemIsDefault) {
  auto l = *parse_guest_loc("0x1c090000");
  EXPECT_EQ(l.space, AddrSpace::kMem);
  EXPECT_EQ(l.addr, 0x1c090000u);
  EXPECT_EQ(parse_guest_loc("mem:0x1000")->addr, 0x1000u);
}

TEST(Locations, Io) {
  auto l = *parse_guest_loc("io:0x441");
  EXPECT_EQ(l.space, AddrSpace::kIo);
  EXPECT_EQ(l.addr, 0x441u);
  EXPECT_FALSE(parse_guest_loc("io:0x10000").ok());
}

TEST(Locations, PciBdf) {
  auto l = *parse_guest_loc("pci:0:12.3");
  EXPECT_EQ(l.space, AddrSpace::kPci);
  EXPECT_EQ(l.bus, 0);
  EXPECT_EQ(l.dev, 12);
  EXPECT_EQ(l.func, 3);
  EXPECT_EQ(parse_guest_loc("pci:1:2")->func, 0);
  EXPECT_FALSE(parse_guest_loc("pci:0:32").ok());
  EXPECT_FALSE(parse_guest_loc("pci:0:1.8").ok());
  EXPECT_FALSE(parse_guest_loc("pci:256:1").ok());
  EXPECT_FALSE(parse_guest_loc("pci:1").ok());
}

TEST(Locations, PciById) {
  auto l = *parse_guest_loc("pci:0x8086/0x1234/2");
  EXPECT_TRUE(l.pci_by_id);
  EXPECT_EQ(l.vendor, 0x8086);
  EXPECT_EQ(l.device, 0x1234);
  EXPECT_EQ(l.index, 2u);
  EXPECT_FALSE(parse_guest_loc("pci:0x18086/1").ok());
  EXPECT_FALSE(parse_guest_loc("pci:1/2/3/4").ok());
}

TEST(Locations, Errors) {
  EXPECT_FALSE(parse_guest_loc("").ok());
  EXPECT_FALSE(parse_guest_loc("foo:1").ok());
  EXPECT_FALSE(parse_guest_loc("mem:").ok());
  EXPECT_NE(parse_guest_loc("zz").error().message.find("expected a location"), std::string::npos);
}

TEST(Locations, Str) {
  EXPECT_EQ(parse_guest_loc("io:1016")->str(), "io:0x3f8");
  EXPECT_EQ(parse_guest_loc("pci:0:3")->str(), "pci:0:3.0");
}

TEST(Interrupts, PicLineAndApic) {
  auto r = *parse_intr("myioapic:4");
  EXPECT_EQ(r.pic, "myioapic");
  EXPECT_EQ(r.line, 4u);
  EXPECT_TRUE(parse_intr("apic")->apic);
  EXPECT_FALSE(parse_intr("myioapic").ok());
  EXPECT_FALSE(parse_intr(":4").ok());
  EXPECT_FALSE(parse_intr("a:x").ok());
  EXPECT_FALSE(parse_intr("a:99999999999").ok());
}

TEST(Interrupts, List) {
  auto l = *parse_intr_list("a:0,a:8,b:10");
  ASSERT_EQ(l.size(), 3u);
  EXPECT_EQ(l[2].pic, "b");
  EXPECT_EQ(l[2].line, 10u);
  EXPECT_FALSE(parse_intr_list("a:0,").ok());
}

TEST(Lists, Numbers) {
  EXPECT_EQ(*parse_number_list("1,3,0x4"), (std::vector<uint64_t>{1, 3, 4}));
  EXPECT_FALSE(parse_number_list("1,,2").ok());
}

}  // namespace
}  // namespace qvm::config
