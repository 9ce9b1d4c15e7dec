// vdev entries: common options (spec §5), per-type schemas, cross checks.
#include <gtest/gtest.h>

#include "test_util.hpp"
#include "vdev/api/schema_util.hpp"
#include "vdev/schemas.hpp"
#include "vdev/virtio_blk/virtio_blk.hpp"
#include "vdev/virtio_entropy/virtio_entropy.hpp"

namespace qvm::config {
namespace {

using test::errors;
using test::expect_error;
using test::kMem;
using test::parse_text;
using test::with_mem;

TEST(Vdev, AppendixA1Platform) {
  auto o = with_mem(
      "vdev ioapic loc 0xfec00000 intr apic name myioapic\n"
      "vdev ser8250 intr myioapic:4\n"
      "vdev timer8254 intr myioapic:0\n"
      "vdev mc146818\n"
      "vdev pckeyboard\n"
      "vdev 8259 loc 0x20\n"
      "vdev 8259 loc 0xa0\n"
      "vdev hpet loc 0xfed00000 intrmap myioapic:2\n");
  ASSERT_TRUE(o.ok()) << errors(o);
  const auto& v = o.config.vdevs;
  ASSERT_EQ(v.size(), 8u);
  EXPECT_TRUE(v[0].intr[0].apic);
  EXPECT_EQ(*v[0].name, "myioapic");
  EXPECT_EQ(v[1].intr[0].line, 4u);
  EXPECT_EQ(v[5].location->space, AddrSpace::kIo);  // 8259: bare number means io:
  EXPECT_EQ(v[5].location->addr, 0x20u);
  EXPECT_EQ(v[7].intr[0].line, 2u);
}

// Each device's options are parsed once, when the configuration is read, into the device's own
// options struct with its own defaults (VdevSchema::parse -> VdevConfig::typed).
TEST(Vdev, TypedOptionsAreParsedWithTheConfiguration) {
  auto o = with_mem(
      "vdev virtio-blk hostdev <disk.img threads 4 aio threads serial abc "
      "vdev virtio-entropy rate 300 "
      "vdev virtio-console hostdev - port org.x,>out.txt "
      "vdev mc146818 reg 0x10,0x20 reg 0x11,0x21");
  ASSERT_TRUE(o.ok()) << errors(o);
  const auto& v = o.config.vdevs;
  const auto* blk = std::any_cast<vdev::VirtioBlk::Options>(&v[0].typed);
  ASSERT_NE(blk, nullptr);
  EXPECT_EQ(blk->path, "disk.img");
  EXPECT_TRUE(blk->read_only);
  EXPECT_EQ(blk->threads, 4u);
  EXPECT_EQ(blk->aio, vdev::VirtioBlk::Aio::kThreads);
  EXPECT_EQ(blk->serial, "abc");
  EXPECT_EQ(blk->poll_us, vdev::VirtioBlk::kDefaultPollUs);  // the device's own default
  const auto* rng = std::any_cast<vdev::VirtioEntropy::Options>(&v[1].typed);
  ASSERT_NE(rng, nullptr);
  EXPECT_EQ(rng->rate_bytes_per_sec, 300u);
  const auto* con = std::any_cast<vdev::VirtioConsoleOptions>(&v[2].typed);
  ASSERT_NE(con, nullptr);
  ASSERT_EQ(con->ports.size(), 2u);
  EXPECT_EQ(con->ports[0].hostdevs, std::vector<std::string>{"-"});
  EXPECT_EQ(con->ports[1].name, "org.x");
  EXPECT_EQ(con->ports[1].hostdevs, std::vector<std::string>{">out.txt"});
  const auto* rtc = std::any_cast<vdev::Mc146818Options>(&v[3].typed);
  ASSERT_NE(rtc, nullptr);
  ASSERT_EQ(rtc->regs.size(), 2u);
  EXPECT_EQ(rtc->regs[1], (std::pair<uint8_t, uint8_t>{0x11, 0x21}));
  // A VdevConfig built without the parser gets the same result from the same function.
  VdevConfig bare = v[1];
  bare.typed.reset();
  auto again = vdev::typed_options<vdev::VirtioEntropy::Options>(bare);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->rate_bytes_per_sec, 300u);
}

// Options QNX configurations use but qvm cannot honour are accepted with a warning at the option.
TEST(Vdev, OptionsWithoutEffectAreWarnedAbout) {
  auto o = with_mem(
      "vdev ioapic name a intr apic vdev ser8250 intr a:4 batch 100 sched 10f "
      "vdev virtio-blk hostdev d.img delayed 5");
  ASSERT_TRUE(o.ok()) << errors(o);
  const std::string e = errors(o);
  EXPECT_NE(e.find("warning: vdev ser8250 option 'batch' has no effect"), std::string::npos) << e;
  EXPECT_NE(e.find("warning: vdev ser8250 option 'sched' has no effect"), std::string::npos) << e;
  EXPECT_NE(e.find("warning: vdev virtio-blk option 'delayed' has no effect"), std::string::npos)
      << e;
  auto quiet = with_mem("vdev ioapic name a intr apic vdev ser8250 intr a:4 hostdev -");
  EXPECT_EQ(errors(quiet).find("warning"), std::string::npos) << errors(quiet);
}

TEST(Vdev, DefaultsFromTheSchema) {
  auto o =
      with_mem("vdev ioapic name a intr apic vdev ser8250 intr a:4 vdev virtio-blk hostdev d.img");
  ASSERT_TRUE(o.ok()) << errors(o);
  const auto& s = o.config.vdevs[1];
  EXPECT_FALSE(s.location);
  EXPECT_EQ(*s.schema->default_loc, "io:0x3f8");
  const auto& b = o.config.vdevs[2];
  EXPECT_TRUE(b.on_pci());
  EXPECT_EQ(*b.number("threads"), 1u);
  EXPECT_EQ(*b.text("dio"), "disable");
  EXPECT_FALSE(b.has("threads"));
}

TEST(Vdev, HpetTakesAListOfInterrupts) {
  auto o =
      with_mem("vdev ioapic name io vdev hpet intr io:0,io:8,io:10 frequency 10000000 legacy-free");
  ASSERT_TRUE(o.ok()) << errors(o);
  EXPECT_EQ(o.config.vdevs[1].intr.size(), 3u);
  EXPECT_TRUE(o.config.vdevs[1].has("legacy-free"));
  EXPECT_EQ(*o.config.vdevs[1].number("frequency"), 10000000u);
}

TEST(Vdev, MmioWhenLocAndIntrAreGiven) {
  auto o = with_mem("vdev ioapic name io vdev virtio-blk loc 0xd0000000 intr io:5 hostdev <ro.img");
  ASSERT_TRUE(o.ok()) << errors(o);
  EXPECT_FALSE(o.config.vdevs[1].on_pci());
  EXPECT_EQ(*o.config.vdevs[1].text("hostdev"), "<ro.img");
}

TEST(Vdev, PciPlacement) {
  auto o = with_mem("vdev virtio-net loc pci:0:5.0 mac 02:00:00:00:00:01");
  ASSERT_TRUE(o.ok()) << errors(o);
  EXPECT_TRUE(o.config.vdevs[0].on_pci());
  EXPECT_EQ(o.config.vdevs[0].location->dev, 5);
}

TEST(Vdev, RepeatableOptionsAccumulate) {
  auto o = with_mem("vdev ioapic name a vdev ser8250 intr a:4 hostdev <in.txt hostdev >out.txt");
  ASSERT_TRUE(o.ok()) << errors(o);
  EXPECT_EQ(o.config.vdevs[1].all("hostdev"), (std::vector<std::string>{"<in.txt", ">out.txt"}));
}

TEST(Vdev, LastValueWinsForPlainOptions) {
  auto o = with_mem("vdev virtio-blk hostdev a.img threads 2 threads 4");
  ASSERT_TRUE(o.ok()) << errors(o);
  EXPECT_EQ(*o.config.vdevs[0].number("threads"), 4u);
}

TEST(Vdev, LogOverride) {
  auto o = with_mem("vdev testdev log debug stdout");
  ASSERT_TRUE(o.ok()) << errors(o);
  EXPECT_EQ((*o.config.vdevs[0].log)[LogClass::kDebug], LogDest::kStdout);
  EXPECT_EQ((*o.config.vdevs[0].log)[LogClass::kError], LogDest::kStderr);
}

TEST(Vdev, UnknownTypeListsKnownTypes) {
  auto o = with_mem("vdev floppy loc io:0x3f0 cpu");
  expect_error(o, "unknown vdev type 'floppy'; known types: ioapic, 8259");
  EXPECT_EQ(o.diags.error_count(), 1u);  // its options are skipped, not reported
  EXPECT_EQ(o.config.cpu_count(), 1u);
}

TEST(Vdev, UnknownOptionListsValidOnes) {
  expect_error(
      with_mem("vdev virtio-blk hostdev a threds 4"),
      "unknown option 'threds' for vdev virtio-blk; valid options: loc, intr, hostvector, name, "
      "log, hostdev, dio, threads");
}

TEST(Vdev, OptionValueErrors) {
  expect_error(with_mem("vdev virtio-blk hostdev a threads 33"),
               "vdev virtio-blk threads: value 33 out of range (1 to 32)");
  expect_error(with_mem("vdev virtio-blk hostdev a dio sometimes"), "expected enable or disable");
  expect_error(with_mem("vdev virtio-net mac 01:00:00:00:00:01"), "multicast");
  expect_error(with_mem("vdev virtio-net mac 02:00:00"), "expected a MAC address");
  expect_error(with_mem("vdev virtio-net bind-mode 999"), "octal");
  expect_error(with_mem("vdev shmem create x"), "expected NAME,SIZE");
  expect_error(with_mem("vdev mc146818 reg 0x80,1"), "CMOS index");
  expect_error(with_mem("vdev wdt-ib700 action explode"), "[dump,]terminate");
  expect_error(with_mem("vdev virtio-blk"), "vdev virtio-blk needs 'hostdev [<]PATH'");
}

TEST(Vdev, LocationTypeMustFit) {
  expect_error(with_mem("vdev ioapic loc io:0x20"),
               "cannot be placed at 'io:0x20'; allowed location types: mem:");
  expect_error(with_mem("vdev virtio-blk hostdev a loc pci:0x1af4/0x1001"), "pci:BUS:DEV");
  // A bare number for a port-only device is a port in every spelling: 0xem (0xe MiB) is out of
  // range as io:0xe00000 is (a fuzzer round-trip finding: it used to print a form that failed).
  expect_error(with_mem("vdev 8259 loc 0xem"), "I/O port 0xem out of range (0-0xffff)");
  expect_error(with_mem("vdev pckeyboard loc 65536"), "out of range (0-0xffff)");
}

TEST(Vdev, InterruptChecks) {
  expect_error(with_mem("vdev ser8250"), "vdev ser8250 needs 'intr PIC:LINE'");
  expect_error(with_mem("vdev ser8250 intr nowhere:4"), "no interrupt controller named 'nowhere'");
  expect_error(with_mem("vdev ioapic name a vdev ser8250 intr a:24"),
               "line 24 out of range for ioapic 'a' (0-23)");
  expect_error(with_mem("vdev testdev name t vdev ser8250 intr t:1"),
               "'t' is a testdev, not an interrupt controller");
  expect_error(with_mem("vdev ser8250 intr apic"), "'apic' is only valid");
  expect_error(with_mem("vdev ioapic name a vdev ser8250 intr a:1,a:2"), "takes one interrupt");
  expect_error(with_mem("vdev testdev intr a:1"), "has no interrupt");
  expect_error(with_mem("vdev ioapic name a vdev virtio-blk hostdev x loc 0xd0000000"),
               "vdev virtio-blk needs 'intr PIC:LINE'");
}

TEST(Vdev, NamesAreUnique) {
  expect_error(with_mem("vdev testdev name x vdev pckeyboard name x"),
               "vdev name 'x' is used twice");
}

TEST(Vdev, HostvectorOnlyForPics) {
  auto o = with_mem("vdev ioapic name a hostvector 32");
  ASSERT_TRUE(o.ok()) << errors(o);
  EXPECT_EQ(*o.config.vdevs[0].hostvector, 32u);
  EXPECT_NE(errors(o).find(":45: warning: vdev ioapic option 'hostvector' has no effect"),
            std::string::npos)
      << errors(o);
  expect_error(with_mem("vdev testdev hostvector 1"),
               "'hostvector' applies only to interrupt-controller");
}

TEST(Vdev, NeedsLocWhenNoDefaultAndNoPci) {
  expect_error(with_mem("vdev 8259"), "vdev 8259 needs 'loc LOCATION'");
}

TEST(Vdev, ForwardReferenceToAPic) {
  auto o = with_mem("vdev ser8250 intr late:4 vdev ioapic name late");
  EXPECT_TRUE(o.ok()) << errors(o);
}

}  // namespace
}  // namespace qvm::config
