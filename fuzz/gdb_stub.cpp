// Fuzz target: the GDB stub (src/gdb) as a client drives it over the socket, against a fake VM
// (tests/unit/gdb/fake_target.hpp). Input: chunks {op, len, bytes}: op & 3 == 0 feeds the bytes
// (packets, acks, interrupts, noise), 1 feeds them framed as one packet, 2 reports a debug trap
// (vector, vCPU, address from the bytes), 3 switches the fake host's limits (PVM or not).
// Properties: no crash or sanitizer report; every reply is a well-formed frame with a right
// checksum; after the client goes away every vCPU runs with debugging off.
#include <cstdint>

#include "fake_target.hpp"
#include "fuzz_input.hpp"
#include "gdb/stub.hpp"

namespace {

using qvm::fuzz::check;
using qvm::fuzz::Input;

void check_frames(const std::string& out) {
  size_t i = 0;
  while (i < out.size()) {
    if (out[i] == '+' || out[i] == '-') {
      ++i;
      continue;
    }
    check(out[i] == '$');
    size_t h = out.find('#', i);
    check(h != std::string::npos && h + 2 < out.size());
    uint8_t sum = 0;
    for (size_t k = i + 1; k < h; ++k)
      sum = static_cast<uint8_t>(sum + static_cast<uint8_t>(out[k]));
    check(qvm::gdb::parse_hex(out.substr(h + 1, 2)) == sum);
    i = h + 3;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  qvm::gdb::testing::FakeTarget t(2);
  std::string out;
  qvm::gdb::Stub stub(
      t, [&](std::string_view b) { out += b; }, [] {});
  stub.attach();
  Input in(data, size);
  while (!in.empty()) {
    const uint8_t op = in.u8();
    const size_t len = in.u8() % 64;
    std::vector<uint8_t> b = in.bytes(len);
    out.clear();
    switch (op & 3) {
      case 0:
        stub.feed(b);
        break;
      case 1: {
        const std::string f = qvm::gdb::frame(std::string(b.begin(), b.end()));
        stub.feed(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(f.data()), f.size()));
        break;
      }
      case 2: {
        qvm::gdb::DebugTrap tr;
        tr.vcpu = (op >> 2) & 3;  // may be out of range: the stub must ignore it
        tr.exception = (op & 0x10) ? 3 : 1;
        tr.pc = qvm::gdb::testing::FakeTarget::kBase + (len << 4);
        tr.dr6 = (op >> 5) & 0x7;
        stub.on_trap(tr);
        break;
      }
      case 3:
        t.lim.sw_breakpoints = (op & 4) != 0;
        t.lim.user_mode_traps = (op & 8) != 0;
        break;
    }
    check_frames(out);
    if (!stub.attached()) stub.attach();
  }
  // A client going away leaves the VM running with debugging off, whatever it did before.
  stub.disconnected();
  check(!stub.attached());
  check(t.running.size() == 2);
  for (const auto& d : t.debug) check(!d.enabled && !d.single_step && !d.hw[0].enabled);
  return 0;
}
