// The GDB stub's protocol state machine (src/gdb/stub.*) over a fake target: what GDB sends, what
// it gets back, and what the VM is told (memory, debug state, run/stop).
#include "gdb/stub.hpp"

#include <gtest/gtest.h>

#include "fake_target.hpp"

namespace qvm::gdb {
namespace {

using testing::FakeTarget;

class StubTest : public ::testing::Test {
 protected:
  StubTest()
      : stub(
            t, [this](std::string_view b) { out += b; }, [this] { closed = true; }) {
    stub.attach();
    send("QStartNoAckMode");
    out.clear();
  }
  // Sends one packet; returns the reply payload (acks off after the constructor).
  std::string send(std::string_view payload) {
    out.clear();
    const std::string f = frame(payload);
    stub.feed(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(f.data()), f.size()));
    return payload_of(out);
  }
  static std::string payload_of(const std::string& framed) {
    auto d = framed.find('$');
    auto h = framed.rfind('#');
    if (d == std::string::npos || h == std::string::npos || h < d) return "<none>";
    auto raw = unescape(framed.substr(d + 1, h - d - 1));
    return raw ? std::string(raw->begin(), raw->end()) : "<bad>";
  }
  void write_gate(uint64_t vector, uint64_t handler) {
    const uint64_t g = t.idt_info.base + vector * 16;
    t.at(g) = static_cast<uint8_t>(handler);
    t.at(g + 1) = static_cast<uint8_t>(handler >> 8);
    t.at(g + 5) = 0x8e;
    t.at(g + 6) = static_cast<uint8_t>(handler >> 16);
    t.at(g + 7) = static_cast<uint8_t>(handler >> 24);
  }

  FakeTarget t;
  std::string out;
  bool closed = false;
  Stub stub;
};

TEST_F(StubTest, AttachStopsTheVmAndReportsASigtrapOnThread1) {
  EXPECT_EQ(t.stops, 1);
  EXPECT_TRUE(t.debug[0].enabled);
  EXPECT_EQ(send("?"), "T05thread:1;");
  EXPECT_EQ(send("qAttached"), "1");
  EXPECT_EQ(send("qfThreadInfo"), "m1,2");
  EXPECT_EQ(send("qsThreadInfo"), "l");
  EXPECT_NE(send("qSupported:multiprocess+;swbreak+").find("qXfer:features:read+"),
            std::string::npos);
  EXPECT_EQ(send("vMustReplyEmpty"), "");
}

TEST_F(StubTest, AcksEachGoodPacketAndNacksABadOneUntilNoAckMode) {
  FakeTarget t2;
  std::string o;
  Stub s(
      t2, [&](std::string_view b) { o += b; }, [] {});
  s.attach();
  const std::string good = frame("?"), bad = "$?#00";
  s.feed(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(good.data()), good.size()));
  EXPECT_EQ(o.substr(0, 2), "+$");
  o.clear();
  s.feed(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(bad.data()), bad.size()));
  EXPECT_EQ(o, "-");
  EXPECT_EQ(s.stats().bad_packets, 1u);
}

TEST_F(StubTest, RegistersOfTheSelectedThread) {
  t.regs[1].rip = 0x123456;
  EXPECT_EQ(send("Hg2"), "OK");
  const std::string g = send("g");
  EXPECT_EQ(g.size(), encode_all(t.regs[1], Arch::kX86_64).size());
  EXPECT_EQ(send("p10"), "5634120000000000");
  EXPECT_EQ(send("P10=efbeadde00000000"), "OK");
  EXPECT_EQ(t.regs[1].rip, 0xdeadbeefu);
  EXPECT_EQ(send("Hg3"), "E01");  // no third vCPU
  EXPECT_EQ(send("P10=zz"), "E01");
  EXPECT_EQ(send("p9999"), "E01");
}

TEST_F(StubTest, MemoryReadWriteAndBinaryWrite) {
  const uint64_t a = FakeTarget::kBase + 0x100;
  EXPECT_EQ(send("M100100,2:abcd"), "OK");
  EXPECT_EQ(send("m100100,2"), "abcd");
  // X carries binary data, escaped once on the wire: "}\x03" is 0x23 ('#').
  std::string wire = "X100102,2:}\x03\x01";
  uint8_t sum = 0;
  for (char c : wire) sum = static_cast<uint8_t>(sum + static_cast<uint8_t>(c));
  static const char* kHex = "0123456789abcdef";
  wire = "$" + wire + "#" + kHex[sum >> 4] + kHex[sum & 15];
  out.clear();
  stub.feed(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(wire.data()), wire.size()));
  EXPECT_EQ(payload_of(out), "OK");
  EXPECT_EQ(t.at(a + 2), 0x23);
  EXPECT_EQ(t.at(a + 3), 0x01);
  EXPECT_EQ(send("m0,4"), "E14");            // unmapped
  EXPECT_EQ(send("m10fffe,8"), "0000");      // stops at the end of memory
  EXPECT_EQ(send("M100100,2:abc"), "E01");   // odd digits
  EXPECT_EQ(send("M100100,3:abcd"), "E01");  // length mismatch
  EXPECT_EQ(send("mzz,4"), "E01");
  // A huge length is clamped, not allocated.
  EXPECT_EQ(send("m100000,ffffffffffff").size(), 2 * kMaxMemory);
}

TEST_F(StubTest, SoftwareBreakpointsPatchInt3AndAreHiddenFromReads) {
  const uint64_t a = FakeTarget::kBase + 0x200;
  t.at(a) = 0x55;
  EXPECT_EQ(send("Z0,100200,1"), "OK");
  EXPECT_EQ(t.at(a), 0xcc);
  EXPECT_EQ(send("m100200,1"), "55");  // GDB sees the guest's byte
  EXPECT_EQ(send("vCont;c"), "<none>");
  EXPECT_TRUE(t.debug[0].sw_breakpoints);
  EXPECT_EQ(t.running.size(), 2u);
  stub.on_trap({1, 3, a, 0});
  EXPECT_EQ(payload_of(out), "T05thread:2;swbreak:;");
  EXPECT_EQ(send("z0,100200,1"), "OK");
  EXPECT_EQ(t.at(a), 0x55);
  EXPECT_EQ(send("z0,100200,1"), "E01");
}

TEST_F(StubTest, AGuestsOwnInt3IsReportedAndReinjected) {
  send("vCont;c");
  stub.on_trap({0, 3, FakeTarget::kBase + 0x300, 0});
  EXPECT_EQ(payload_of(out), "T05thread:1;");
  send("vCont;c");
  EXPECT_TRUE(t.debug[0].inject_bp);
  EXPECT_FALSE(t.debug[1].inject_bp);
}

TEST_F(StubTest, HardwareBreakpointsAndWatchpointsUseTheFourDebugRegisters) {
  EXPECT_EQ(send("Z1,100400,1"), "OK");
  EXPECT_EQ(send("Z2,100800,8"), "OK");
  EXPECT_EQ(send("Z3,100810,4"), "OK");
  EXPECT_EQ(send("Z4,100820,2"), "OK");
  EXPECT_EQ(send("Z1,100500,1"), "E28");  // all four in use
  EXPECT_EQ(send("Z2,100801,4"), "E01");  // unaligned
  EXPECT_EQ(send("Z2,100800,3"), "E01");  // no such length
  send("vCont;c");
  const DebugState& d = t.debug[0];
  EXPECT_TRUE(d.hw[0].enabled && d.hw[0].rw == 0 && d.hw[0].addr == 0x100400);
  EXPECT_TRUE(d.hw[1].rw == 1 && d.hw[1].len == 8);
  EXPECT_TRUE(d.hw[2].rw == 3 && d.hw[3].rw == 3);
  stub.on_trap({0, 1, 0x100410, 0x2});
  EXPECT_EQ(payload_of(out), "T05thread:1;watch:100800;");
  send("vCont;c");
  stub.on_trap({0, 1, 0x100400, 0x1});
  EXPECT_EQ(payload_of(out), "T05thread:1;hwbreak:;");
  EXPECT_EQ(send("z2,100800,8"), "OK");
  EXPECT_EQ(send("z2,100800,8"), "E01");
}

TEST_F(StubTest, AStepRunsOnlyThatVcpuAndCatchesAFaultInItsHandler) {
  const uint64_t ud = FakeTarget::kBase + 0x2000, gp = FakeTarget::kBase + 0x2100;
  write_gate(6, ud);
  write_gate(13, gp);
  t.regs[0].rip = FakeTarget::kBase + 0x500;
  EXPECT_EQ(send("vCont;s:1;c"), "<none>");
  ASSERT_EQ(t.running.size(), 1u);
  EXPECT_EQ(t.running[0], 0u);
  const DebugState& d = t.debug[0];
  EXPECT_TRUE(d.single_step);
  EXPECT_FALSE(t.debug[1].single_step);
  EXPECT_TRUE(d.hw[0].enabled && d.hw[0].addr == ud);
  EXPECT_TRUE(d.hw[1].enabled && d.hw[1].addr == gp);
  // The step faulted (#UD): the CPU pushed RIP, CS, RFLAGS (with the step's TF) at RSP.
  const uint64_t rsp = t.regs[0].gpr[7];
  t.at(rsp + 16) = 0x46;
  t.at(rsp + 17) = 0x03;  // RFLAGS 0x346: TF (bit 8) set
  t.regs[0].rip = ud;
  stub.on_trap({0, 1, ud, 0x1});
  EXPECT_EQ(payload_of(out), "T05thread:1;");
  EXPECT_EQ(t.at(rsp + 17), 0x02);  // TF cleared in the frame
  send("vCont;c");
  EXPECT_FALSE(t.debug[0].hw[0].enabled);  // catchers gone
  EXPECT_EQ(stub.stats().steps, 1u);
}

TEST_F(StubTest, InterruptStopsARunningVmWithSigint) {
  send("vCont;c");
  EXPECT_TRUE(stub.running());
  out.clear();
  const uint8_t ctrl_c = 0x03;
  stub.feed(std::span<const uint8_t>(&ctrl_c, 1));
  EXPECT_EQ(t.stops, 2);
  EXPECT_EQ(payload_of(out), "T02thread:1;");
  EXPECT_FALSE(stub.running());
}

TEST_F(StubTest, DetachRemovesBreakpointsAndLetsTheVmRun) {
  const uint64_t a = FakeTarget::kBase + 0x200;
  t.at(a) = 0x90;
  send("Z0,100200,1");
  send("Z1,100400,1");
  EXPECT_EQ(send("D"), "OK");
  EXPECT_TRUE(closed);
  EXPECT_EQ(t.at(a), 0x90);
  EXPECT_FALSE(t.debug[0].enabled);
  EXPECT_FALSE(t.debug[0].hw[0].enabled);
  EXPECT_EQ(t.running.size(), 2u);
  EXPECT_FALSE(stub.attached());
}

TEST_F(StubTest, TheVmEndingRestoresMemoryAndTellsARunningClient) {
  const uint64_t a = FakeTarget::kBase + 0x200;
  t.at(a) = 0x90;
  send("Z0,100200,1");
  send("vCont;c");
  out.clear();
  stub.vm_ended(32);
  EXPECT_EQ(t.at(a), 0x90);
  EXPECT_EQ(payload_of(out), "W20");
  EXPECT_FALSE(stub.attached());
}

TEST_F(StubTest, MonitorSwitchesToPhysicalAddresses) {
  auto hex = [](std::string_view c) { return to_hex(c); };
  const std::string r = send("qRcmd," + hex("phys on"));
  auto text = parse_hex_bytes(r);
  ASSERT_TRUE(text);
  EXPECT_NE(std::string(text->begin(), text->end()).find("guest-physical"), std::string::npos);
  EXPECT_TRUE(t.physical);
  send("qRcmd," + hex("phys off"));
  EXPECT_FALSE(t.physical);
  EXPECT_FALSE(send("qRcmd," + hex("help")).empty());
  EXPECT_EQ(send("qRcmd,zz"), "E01");
}

TEST_F(StubTest, KillEndsTheVm) {
  send("k");
  EXPECT_TRUE(t.killed);
  EXPECT_TRUE(closed);
}

TEST_F(StubTest, TargetDescriptionFollowsTheModeAtFirstRead) {
  t.regs[0].efer = 0;  // 32-bit
  const std::string x = send("qXfer:features:read:target.xml:0,3fff");
  ASSERT_FALSE(x.empty());
  EXPECT_EQ(x[0], 'l');
  EXPECT_NE(x.find("<architecture>i386<"), std::string::npos);
  EXPECT_EQ(send("g").size(), encode_all(t.regs[0], Arch::kI386).size());
  // Chunked reads.
  const std::string first = send("qXfer:features:read:target.xml:0,10");
  EXPECT_EQ(first.substr(0, 1), "m");
  EXPECT_EQ(first.size(), 17u);
  EXPECT_EQ(send("qXfer:features:read:target.xml:ffffff,10"), "l");
  EXPECT_EQ(send("qXfer:features:read:target.xml:zz"), "E01");
}

TEST_F(StubTest, OnPvmHostsZ0UsesADebugRegisterAndRing3StepsAreRefused) {
  t.lim.sw_breakpoints = false;
  t.lim.user_mode_traps = false;
  t.lim.why = "test host";
  const uint64_t a = FakeTarget::kBase + 0x200;
  t.at(a) = 0x55;
  EXPECT_EQ(send("Z0,100200,1"), "OK");
  EXPECT_EQ(t.at(a), 0x55);  // no int3 written
  send("vCont;c");
  EXPECT_TRUE(t.debug[0].hw[0].enabled && t.debug[0].hw[0].addr == a);
  stub.on_trap({0, 1, a, 0x1});
  EXPECT_EQ(payload_of(out), "T05thread:1;swbreak:;");
  EXPECT_EQ(send("z0,100200,1"), "OK");
  t.regs[0].seg[0] = 0x2b;  // ring 3
  EXPECT_EQ(send("vCont;s:1"), "E01");
  EXPECT_FALSE(stub.running());
  t.regs[0].seg[0] = 0x10;
  EXPECT_EQ(send("s"), "<none>");
  EXPECT_TRUE(stub.running());
}

TEST_F(StubTest, MalformedRequestsAreAnsweredWithErrors) {
  EXPECT_EQ(send("vCont;x"), "E01");
  EXPECT_EQ(send("vCont;s:9"), "E01");
  EXPECT_EQ(send("vCont;"), "E01");
  EXPECT_EQ(send("Z9,1,1"), "");
  EXPECT_EQ(send("Z0"), "E01");
  EXPECT_EQ(send("H"), "E01");
  EXPECT_EQ(send("Hx1"), "E01");
  EXPECT_EQ(send("T0"), "E01");
  EXPECT_EQ(send("G00"), "E01");
  EXPECT_FALSE(stub.running());
}

}  // namespace
}  // namespace qvm::gdb
