// dryrun output: the effective configuration, re-parseable, defaults marked.
#include "config/printer.hpp"

#include <gtest/gtest.h>

#include "test_util.hpp"

namespace qvm::config {
namespace {

using test::errors;
using test::parse_text;

const char* kFull =
    "system demo ram 0,0xa0000 reserve loc 0xa0000,0x20000 rom 0xc0000,0x40000 ram 1m,127m\n"
    "cpu runmask 0 sched 10r cpu\n"
    "load /k/bzImage initrd load /k/initrd module load \"/k/m x=1\" cmdline \"console=ttyS0 "
    "a=\\\"q\\\" $$x\"\n"
    "set exit-on-halt off logger debug stdout unsupported reference abort dump /tmp safety warn\n"
    "pass loc 0x80000000,0x1000,rw intr io:9,t=40\n"
    "vdev ioapic name io intr apic\n"
    "vdev ser8250 intr io:4 hostdev - hostdev >log.txt\n"
    "vdev virtio-blk hostdev <disk.img threads 4 serial \"my disk\"\n"
    "vdev virtio-net loc 0xd0000000 intr io:6 mac 02:00:00:00:00:01 set debug on\n";

// The printed text without comments: re-parsing makes defaults explicit, so only the
// "# default" markers may differ between the two prints.
std::string strip_comments(const std::string& text) {
  std::string out, line;
  for (char c : text + "\n") {
    if (c != '\n') {
      line += c;
      continue;
    }
    if (auto h = line.find('#'); h != std::string::npos) line.resize(h);
    while (!line.empty() && line.back() == ' ') line.pop_back();
    if (!line.empty()) out += line + "\n";
    line.clear();
  }
  return out;
}

TEST(Printer, RoundTrip) {
  auto a = parse_text(kFull);
  ASSERT_TRUE(a.ok()) << errors(a);
  std::string text = print_config(a.config);
  auto b = parse_text(text);
  ASSERT_TRUE(b.ok()) << errors(b) << text;
  EXPECT_EQ(strip_comments(print_config(b.config)), strip_comments(text));
  EXPECT_EQ(*b.config.cmdline, "console=ttyS0 a=\"q\" $x");
  EXPECT_EQ(b.config.memory.size(), 3u);
  EXPECT_EQ(b.config.cpus.size(), 2u);
  EXPECT_EQ(b.config.vdevs.size(), 4u);
  EXPECT_EQ(b.config.vdevs[1].all("hostdev").size(), 2u);
  EXPECT_EQ(b.config.loads[2].module_string, "/k/m x=1");
  EXPECT_EQ(b.config.loads[2].path, "/k/m");
}

TEST(Printer, MarksDefaults) {
  auto a = parse_text(kFull);
  std::string text = print_config(a.config);
  EXPECT_NE(text.find("    loc io:0x3f8"), std::string::npos) << text;
  EXPECT_NE(text.find("    threads 4\n"), std::string::npos) << text;
  EXPECT_NE(text.find("    dio disable                           # default"), std::string::npos)
      << text;
  EXPECT_NE(text.find("set message-block-timeout 10000           # default"), std::string::npos)
      << text;
  EXPECT_NE(text.find("vdev virtio-blk                           # on PCI"), std::string::npos)
      << text;
  EXPECT_NE(text.find("unsupported instruction fail              # default"), std::string::npos)
      << text;
  EXPECT_NE(text.find("unsupported reference abort\n"), std::string::npos) << text;
}

TEST(Quote, PlainAndQuoted) {
  EXPECT_EQ(quote("abc"), "abc");
  EXPECT_EQ(quote("a b"), "\"a b\"");
  EXPECT_EQ(quote(""), "\"\"");
  EXPECT_EQ(quote("@x"), "\"@x\"");
  EXPECT_EQ(quote("$"), "\"$$\"");
  EXPECT_EQ(quote("a\"b"), "\"a\\\"b\"");
}

}  // namespace
}  // namespace qvm::config
