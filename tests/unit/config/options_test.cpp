// Each global, cpu and pass option of spec §3-§4, including its error paths.
#include <gtest/gtest.h>

#include "config/variables.hpp"
#include "test_util.hpp"

namespace qvm::config {
namespace {

using test::errors;
using test::expect_error;
using test::kMem;
using test::parse_args;
using test::parse_text;
using test::with_mem;

TEST(Ram, CanonicalX86Layout) {
  auto o = parse_text("ram 0,0xa0000 reserve loc 0xa0000,0x20000 rom 0xc0000,0x40000 ram 1m,1023m");
  ASSERT_TRUE(o.ok()) << errors(o);
  const auto& m = o.config.memory;
  ASSERT_EQ(m.size(), 3u);
  EXPECT_EQ(m[1].kind, MemConfig::Kind::kRom);
  EXPECT_EQ(m[2].start, 1u << 20);
  EXPECT_EQ(m[2].size, 1023u << 20);
}

TEST(Ram, WithoutStartGoesAfterTheHighest) {
  // The 7.0 example: ram 0xa0000 / rom 0xc0000,0x40000 / ram 1024M.
  auto o = parse_text("ram 0xa0000 rom 0xc0000,0x40000 ram 1024M");
  ASSERT_TRUE(o.ok()) << errors(o);
  const auto& m = o.config.memory;
  EXPECT_EQ(m[0].start, 0u);
  EXPECT_EQ(m[2].start, 0x100000u);
  EXPECT_FALSE(m[2].explicit_start);
}

TEST(Ram, Errors) {
  expect_error(parse_text("ram 0"), "'ram' length must not be zero");
  expect_error(parse_text("ram 0x1001"), "multiples of 4 KiB");
  expect_error(parse_text("ram 1,2,3"), "expected [START,]LENGTH");
  expect_error(parse_text("ram 0,1m ram 512k,1m"), "overlaps the region declared at");
  expect_error(parse_text("ram 0xfffffffffffff000,0x2000"), "beyond");
  expect_error(parse_text("ram"), "option 'ram' needs an argument: expected [START,]LENGTH");
}

TEST(Reserve, Forms) {
  auto o =
      with_mem("reserve loc io:0x80,0x8 reserve loc pci:0:1 reserve intr 39 reserve loc io:0x92");
  ASSERT_TRUE(o.ok()) << errors(o);
  const auto& r = o.config.reserves;
  ASSERT_EQ(r.size(), 4u);
  EXPECT_EQ(r[0].loc.space, AddrSpace::kIo);
  EXPECT_EQ(r[0].length, 8u);
  EXPECT_EQ(r[1].loc.space, AddrSpace::kPci);
  EXPECT_EQ(r[2].kind, ReserveConfig::Kind::kIntr);
  EXPECT_EQ(r[2].intr, 39u);
  EXPECT_EQ(r[3].length, 1u);
}

TEST(Reserve, Errors) {
  expect_error(with_mem("reserve loc 0x1000"), "a memory reservation needs a length");
  expect_error(with_mem("reserve foo 1"), "expected 'loc' or 'intr' after 'reserve'");
  expect_error(with_mem("reserve intr x"), "expected an interrupt number");
  expect_error(with_mem("reserve loc 0x1000,0"), "non-zero length");
}

TEST(Load, BlobTypes) {
  auto o = with_mem(
      "load /k/bzImage initrd load /k/initrd.img data load 0x9000,/k/blob acpi load t.aml "
      "fdt load x.dtb none load 0x200000,/k/elf");
  ASSERT_TRUE(o.ok()) << errors(o);
  const auto& l = o.config.loads;
  ASSERT_EQ(l.size(), 6u);
  EXPECT_EQ(l[0].type, BlobType::kAuto);
  EXPECT_EQ(l[1].type, BlobType::kInitrd);
  EXPECT_EQ(l[2].type, BlobType::kData);
  EXPECT_EQ(*l[2].addr, 0x9000u);
  EXPECT_EQ(l[2].path, "/k/blob");
  EXPECT_EQ(l[3].type, BlobType::kAcpi);
  EXPECT_EQ(l[4].type, BlobType::kFdt);
  EXPECT_EQ(l[5].type, BlobType::kAuto);
  EXPECT_EQ(*l[5].addr, 0x200000u);
}

TEST(Load, PathWithCommaButNoAddress) {
  auto o = with_mem("load my,file");
  ASSERT_TRUE(o.ok()) << errors(o);
  EXPECT_EQ(o.config.loads[0].path, "my,file");
  EXPECT_FALSE(o.config.loads[0].addr);
}

TEST(Load, MultibootModules) {
  auto o = with_mem("load /k/qnx.ifs module load \"/k/mod.bin a=1 b\" module load /k/two");
  ASSERT_TRUE(o.ok()) << errors(o);
  const auto& l = o.config.loads;
  ASSERT_EQ(l.size(), 3u);
  EXPECT_EQ(l[1].type, BlobType::kModule);
  EXPECT_EQ(l[1].path, "/k/mod.bin");
  EXPECT_EQ(l[1].module_string, "/k/mod.bin a=1 b");
  EXPECT_EQ(l[2].path, "/k/two");
  EXPECT_EQ(l[2].module_string, "/k/two");
  expect_error(with_mem("module load 0x1000,/k/m"), "'module load' takes no address");
  expect_error(with_mem("module load \" x\""), "expected a file name to load");
}

TEST(Load, DataNeedsAnAddress) {
  expect_error(with_mem("data load x"), "'data load' needs an address");
}

TEST(Cmdline, LastWins) {
  auto o = with_mem("cmdline \"a b\" cmdline \"c\"");
  ASSERT_TRUE(o.ok());
  EXPECT_EQ(*o.config.cmdline, "c");
}

TEST(Cpu, RunmaskAndSched) {
  auto o = with_mem("cpu runmask 0,2 sched 10f cpu sched 0o cpu sched 20");
  ASSERT_TRUE(o.ok()) << errors(o);
  const auto& c = o.config.cpus;
  EXPECT_EQ(c[0].runmask, (std::vector<uint32_t>{0, 2}));
  EXPECT_EQ(c[0].sched->policy, SchedPolicy::kFifo);
  EXPECT_EQ(c[0].sched->priority, 10u);
  EXPECT_EQ(c[1].sched->policy, SchedPolicy::kOther);
  EXPECT_EQ(c[2].sched->policy, SchedPolicy::kRoundRobin);
}

TEST(Cpu, Errors) {
  expect_error(with_mem("cpu sched 100"), "priority 1-99");
  expect_error(with_mem("cpu sched 0"), "real-time priority must be 1-99");
  expect_error(with_mem("cpu sched 5o"), "priority 1-99 for r/f (0 for o)");
  expect_error(with_mem("cpu sched 10,5,3,1000,100"), "sporadic scheduling");
  expect_error(with_mem("cpu runmask 1,x"), "runmask:");
  expect_error(with_mem("cpu runmask 5000"), "out of range");
}

TEST(Cpu, PartitionIsAWarning) {
  auto o = with_mem("cpu partition gfx");
  ASSERT_TRUE(o.ok()) << errors(o);
  EXPECT_NE(errors(o).find("warning: cpu partition 'gfx' is not supported on Linux"),
            std::string::npos);
}

TEST(Pass, LocAndIntr) {
  auto o = with_mem(
      "pass loc mem:0x2000,0x1000,r=0x1000 intr myioapic:5,u=77 vdev ioapic name myioapic");
  ASSERT_TRUE(o.ok()) << errors(o);
  const auto& p = o.config.passes.at(0);
  EXPECT_EQ(p.location->guest.addr, 0x2000u);
  EXPECT_EQ(*p.location->length, 0x1000u);
  EXPECT_EQ(p.location->attrs, "r");
  EXPECT_EQ(p.location->host->addr, 0x1000u);
  EXPECT_EQ(p.intr->guest.line, 5u);
  EXPECT_EQ(p.intr->mode, 'u');
  EXPECT_EQ(*p.intr->host_vector, 77u);
}

TEST(Pass, PciById) {
  auto o = with_mem("pass loc pci:0:12.0=pci:0x8086/0x10d3");
  ASSERT_TRUE(o.ok()) << errors(o);
  EXPECT_TRUE(o.config.passes[0].location->host->pci_by_id);
}

TEST(Pass, Errors) {
  expect_error(with_mem("pass"), "'pass' needs 'loc' and/or 'intr'");
  expect_error(with_mem("pass loc 0x1000"), "pass loc of memory needs a length");
  expect_error(with_mem("pass loc 0x1000,0x1000,rq"), "attribute letters");
  expect_error(with_mem("pass intr x:1,z"), "expected GUEST_INTR[,t|u]");
  expect_error(with_mem("pass intr nopic:1"), "no interrupt controller named 'nopic'");
  expect_error(with_mem("fdt pass loc 0x1000,0x1000"), "cannot be used with 'pass'");
}

TEST(Set, GuestVariables) {
  auto o =
      with_mem("set exit-on-halt off set message-block-timeout 0 set gdb tcp:0.0.0.0:1234,paused");
  ASSERT_TRUE(o.ok()) << errors(o);
  EXPECT_EQ(*o.config.var("exit-on-halt"), "off");
  EXPECT_EQ(*o.config.var("slog-buffer"), "4K");  // default
}

TEST(Set, Errors) {
  expect_error(with_mem("set nope 1"), "unknown variable 'nope' (run 'qvm set ?' for the list)");
  expect_error(with_mem("set exit-on-halt maybe"), "set exit-on-halt: expected a boolean");
  expect_error(with_mem("set message-block-timeout 3"), "0 (infinite) or 5 to 10000");
  expect_error(with_mem("set debug on"), "applies to a vdev");
  expect_error(with_mem("set gdb 1234"), "tcp:[HOST:]PORT");
  expect_error(with_mem("set gdb tcp:70000"), "port must be 1-65535");
  expect_error(with_mem("set fdt-dump-file"), "needs an argument");
}

TEST(Set, VariablesWithoutEffectAreWarnedAboutWhereTheyAreWritten) {
  auto o = with_mem(
      "set grow-heap 64k set slog-buffer 8K set message-block-timeout 100 "
      "set posted-interrupts off set virtual-interrupts off "
      "vdev testdev set debug on set vdev-message-block-timeout 50");
  ASSERT_TRUE(o.ok()) << errors(o);
  const std::string e = errors(o);
  for (const char* v : {"grow-heap", "slog-buffer", "message-block-timeout", "posted-interrupts",
                        "virtual-interrupts", "debug", "vdev-message-block-timeout"})
    EXPECT_NE(e.find(std::string("warning: set ") + v + " has no effect"), std::string::npos)
        << v << ": " << e;
  EXPECT_NE(e.find("kvm_intel module parameter enable_apicv"), std::string::npos) << e;
  EXPECT_NE(e.find("t.qvmconf:1:30: warning: set grow-heap"), std::string::npos) << e;  // at `set`
  auto quiet = with_mem("set exit-on-halt off");
  EXPECT_EQ(errors(quiet).find("warning"), std::string::npos) << errors(quiet);
}

TEST(Set, LegacyFreeRefusesTheIsaEraDevices) {
  expect_error(with_mem("set legacy-free on vdev 8259 loc 0x20"),
               "vdev 8259 on a legacy-free PC ('set legacy-free on')");
  expect_error(with_mem("set legacy-free on vdev pckeyboard"), "vdev pckeyboard on a legacy-free");
  auto ok = with_mem(
      "set legacy-free on vdev ioapic loc 0xfec00000 intr apic name a "
      "vdev mc146818 intr a:8");
  EXPECT_TRUE(ok.ok()) << errors(ok);
  EXPECT_EQ(errors(ok).find("warning"), std::string::npos) << errors(ok);
}

TEST(Set, VdevContextVariable) {
  auto o = with_mem("vdev testdev set debug on");
  ASSERT_TRUE(o.ok()) << errors(o);
  EXPECT_EQ(o.config.vdevs[0].vars.at("debug").text, "on");
}

TEST(Set, ArmVariablesWarn) {
  auto o = with_mem("set gic-hwassist off");
  ASSERT_TRUE(o.ok());
  EXPECT_NE(errors(o).find("warning: variable 'gic-hwassist' applies to ARM guests"),
            std::string::npos);
}

TEST(Set, HelpListsEveryVariableWithTypeContextDefault) {
  std::string h = variables_help();
  for (const auto& v : variable_specs()) EXPECT_NE(h.find(std::string(v.name)), std::string::npos);
  EXPECT_NE(h.find("exit-on-halt                guest   boolean  on"), std::string::npos) << h;
}

TEST(Gdb, Endpoints) {
  auto t = *parse_gdb_endpoint("tcp:1234");
  EXPECT_EQ(t.host, "127.0.0.1");
  EXPECT_EQ(t.port, 1234);
  EXPECT_FALSE(t.paused);
  auto u = *parse_gdb_endpoint("unix:/tmp/g.sock,paused");
  EXPECT_TRUE(u.unix_socket);
  EXPECT_TRUE(u.paused);
  EXPECT_EQ(u.path, "/tmp/g.sock");
  EXPECT_EQ(parse_gdb_endpoint("tcp:localhost:99")->host, "localhost");
  EXPECT_FALSE(parse_gdb_endpoint("tcp:").ok());
  EXPECT_FALSE(parse_gdb_endpoint("unix:").ok());
}

TEST(Logger, IndependentClasses) {
  auto o = with_mem("logger debug stdout logger info,warn none");
  ASSERT_TRUE(o.ok()) << errors(o);
  const auto& r = o.config.logging;
  EXPECT_EQ(r[LogClass::kDebug], LogDest::kStdout);
  EXPECT_EQ(r[LogClass::kInfo], LogDest::kNone);
  EXPECT_EQ(r[LogClass::kVerbose], LogDest::kNone);  // debug does not imply verbose
  EXPECT_EQ(r[LogClass::kError], LogDest::kStderr);  // untouched default
}

TEST(Logger, Errors) {
  expect_error(with_mem("logger debug file"), "expected a log destination");
  expect_error(with_mem("logger loud stderr"), "unknown log class 'loud'");
}

TEST(Unsupported, Policies) {
  auto o = with_mem(
      "unsupported instruction abort unsupported reference fail unsupported register ignore");
  ASSERT_TRUE(o.ok()) << errors(o);
  EXPECT_EQ(o.config.unsupported.instruction, UnsupportedAction::kAbort);
  EXPECT_EQ(o.config.unsupported.reference, UnsupportedAction::kFail);
  EXPECT_EQ(o.config.unsupported.reg, UnsupportedAction::kIgnore);
  expect_error(with_mem("unsupported reference explode"), "expected abort, fail or ignore");
  expect_error(with_mem("unsupported cpu fail"), "expected instruction, reference or register");
}

TEST(DumpSafetyDryrun, Parse) {
  auto o = with_mem("dump \"|gzip >d.gz\" safety warn dryrun");
  ASSERT_TRUE(o.ok()) << errors(o);
  EXPECT_EQ(*o.config.dump, "|gzip >d.gz");
  EXPECT_EQ(o.config.safety, SafetyMode::kWarn);
  EXPECT_TRUE(o.config.dryrun);
  expect_error(with_mem("safety always"), "expected none, warn or required");
  expect_error(with_mem("dump \"|\""), "expected a directory");
  // qvm is not a safety-certified product: `required` is refused, `warn` warned about; `dump`
  // works (no warning).
  expect_error(with_mem("safety required"), "safety required: qvm is not a safety-certified");
  const std::string e = errors(o);
  EXPECT_NE(e.find("warning: safety warn has no effect"), std::string::npos) << e;
  EXPECT_EQ(e.find("dump"), std::string::npos) << e;
}

TEST(System, NameRules) {
  expect_error(parse_text(std::string("system a/b ") + kMem), "without '/'");
  auto o = parse_text(kMem);
  EXPECT_EQ(o.config.system_name(), "qvm-guest");
}

}  // namespace
}  // namespace qvm::config
