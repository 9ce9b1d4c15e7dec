// The machine layer without KVM: configurations built in dryrun (no /dev/kvm, nothing opened on
// the host but disk images) and checked through describe(): the PCI allocators (slots, memory and
// I/O BARs) keep out of reserved ranges and guest memory, every virtio type gets the same device
// line on MMIO as on PCI (one wiring path), the board's windows refuse guest memory.
#include <gtest/gtest.h>

#include <regex>
#include <string>
#include <vector>

#include "../config/test_util.hpp"
#include "base/exit_code.hpp"
#include "machine/machine.hpp"

namespace qvm::machine {
namespace {

// The platform every case shares (the kit's): 128 MiB, IOAPIC, PICs, PIT, RTC, COM1 to nowhere.
const char* kBase =
    "ram 0,0xa0000 reserve loc 0xa0000,0x20000 rom 0xc0000,0x40000 ram 1m,127m "
    "vdev ioapic loc 0xfec00000 intr apic name myioapic vdev 8259 loc 0x20 vdev 8259 loc 0xa0 "
    "vdev timer8254 intr myioapic:0 vdev mc146818 intr myioapic:8 "
    "vdev ser8250 loc 0x3f8 intr myioapic:4 ";

struct Built {
  std::unique_ptr<Machine> machine;
  BuildError err{0, {}};
  std::string text;  // describe(), or the error
};

Built build(const std::string& extra) {
  std::vector<std::string> args;
  std::string words = std::string(kBase) + extra;
  for (size_t i = 0; i < words.size();) {
    size_t j = words.find(' ', i);
    if (j == std::string::npos) j = words.size();
    if (j > i) args.push_back(words.substr(i, j - i));
    i = j + 1;
  }
  auto parsed = config::test::parse_args(args);
  Built b;
  if (!parsed.ok()) {
    b.text = "parse error";
    return b;
  }
  BuildOptions o;
  o.dryrun = true;
  b.machine = Machine::build(parsed.config, o, &b.err);
  b.text = b.machine ? b.machine->describe() : b.err.message;
  return b;
}

// The device line of the first device named `type`.
std::string line_of(const std::string& text, const std::string& type) {
  std::smatch m;
  std::regex re("\\n    (" + type + " [^\\n]*)");
  return std::regex_search(text, m, re) ? m[1].str() : "";
}

TEST(MachineBuild, PciBarsAvoidReservedRangesAndSlots) {
  // The first 64 KiB of the BAR window reserved, slot 1 reserved: BARs start after the
  // reservation, the device goes to slot 2.
  auto b = build(
      "reserve loc 0xc0000000,0x10000 reserve loc pci:0:1.0,1 vdev virtio-entropy vdev "
      "virtio-entropy");
  ASSERT_TRUE(b.machine) << b.text;
  EXPECT_NE(b.text.find("virtio-entropy pci 00:02.0"), std::string::npos) << b.text;
  EXPECT_EQ(b.text.find("pci 00:01.0"), std::string::npos) << b.text;
  std::smatch m;
  std::string t = b.text;
  std::regex bar(" BAR[0-9] 0x([0-9a-f]+)\\+0x([0-9a-f]+)");
  std::vector<std::pair<uint64_t, uint64_t>> seen;
  for (std::sregex_iterator it(t.begin(), t.end(), bar), end; it != end; ++it) {
    uint64_t a = std::stoull((*it)[1].str(), nullptr, 16),
             n = std::stoull((*it)[2].str(), nullptr, 16);
    EXPECT_GE(a, 0xc0010000u) << "BAR in the reserved range: " << it->str();
    EXPECT_EQ(a % n, 0u) << "BAR not naturally aligned: " << it->str();
    for (const auto& [pa, pn] : seen) EXPECT_TRUE(a + n <= pa || pa + pn <= a) << "overlap";
    seen.emplace_back(a, n);
  }
  EXPECT_EQ(seen.size(), 4u) << b.text;  // two functions, two memory BARs each
}

TEST(MachineBuild, VirtioTypesAreWiredAlikeOnMmioAndPci) {
  const std::vector<std::string> types = {"virtio-entropy", "virtio-console", "virtio-net"};
  for (const auto& t : types) {
    auto mmio = build("vdev " + t + " loc 0xd0000000 intr myioapic:5");
    auto pci = build("vdev " + t);
    ASSERT_TRUE(mmio.machine) << t << ": " << mmio.text;
    ASSERT_TRUE(pci.machine) << t << ": " << pci.text;
    const std::string lm = line_of(mmio.text, t), lp = line_of(pci.text, t);
    ASSERT_FALSE(lm.empty()) << mmio.text;
    ASSERT_FALSE(lp.empty()) << pci.text;
    // The notification path (the first word in parentheses) and the device's own summary
    // (after them) are the same on both transports.
    auto notify = [](const std::string& l) {
      std::smatch m;
      return std::regex_search(l, m, std::regex("\\(([^,)]*)[,)]")) ? m[1].str() : "?";
    };
    auto tail = [](const std::string& l) {
      auto p = l.find(")");
      return p == std::string::npos ? l : l.substr(p + 1);
    };
    EXPECT_EQ(notify(lm), notify(lp)) << lm << "\n" << lp;
    EXPECT_EQ(tail(lm), tail(lp)) << lm << "\n" << lp;
    EXPECT_NE(lm.find("virtio-mmio"), std::string::npos) << lm;
    EXPECT_NE(lp.find("pci 00:"), std::string::npos) << lp;
  }
}

TEST(MachineBuild, GuestMemoryOverTheBoardWindowsIsAConfigurationError) {
  for (const std::string& ram : {std::string("ram 0xb0000000,1m"), std::string("ram 0xfec00000,4k"),
                                 std::string("ram 0xfee00000,4k")}) {
    auto b = build(ram);
    EXPECT_FALSE(b.machine) << ram;
    EXPECT_EQ(b.err.exit_code, kExitConfigError) << ram << ": " << b.text;
    EXPECT_NE(b.text.find("overlaps"), std::string::npos) << b.text;
  }
  EXPECT_TRUE(build("ram 4g,1g").machine);  // above 4 GiB is fine
}

TEST(MachineBuild, PlatformDevicesDescribeThemselves) {
  auto b = build("vdev pckeyboard vdev testdev");
  ASSERT_TRUE(b.machine) << b.text;
  for (const char* want : {"ioapic      mem 0xfec00000", "8259        io 0x20",
                           "8259        io 0xa0", "timer8254   io 0x40-0x43  gsi 0",
                           "mc146818    io 0x70-0x71  gsi 8", "ser8250     io 0x3f8-0x3ff  gsi 4",
                           "pckeyboard  io 0x60, 0x64", "testdev     io 0xf4-0xf7"})
    EXPECT_NE(b.text.find(want), std::string::npos) << want << "\n" << b.text;
}

}  // namespace
}  // namespace qvm::machine
