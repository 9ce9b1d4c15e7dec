// Fuzz target: the IB700 watchdog's ports as the machine wires them (a ByteRegisterDevice over
// io 0x441-0x443, 1/2/4/8-byte accesses that fit), with timer expiries in between.
// Input: operations {op, offset, value le32 for writes}. op & 1: the timer fires (the owner's
// expiry) instead of an access; op & 2: write; (op >> 2) & 3: size 1/2/4/8.
// Properties: no crash or sanitizer report; reads return all ones; after every access the model
// is armed exactly when the last decoded write went to 0x443 (a write to 0x441 after it stops
// it), each arm request carries kTimeouts[value & 15] of the byte written to 0x443, a stop
// request follows each 0x441 write, and an expiry is due (true) only while armed, once.
#include "vdev/wdt_ib700/ib700.hpp"

#include <cstdint>
#include <mutex>

#include "fuzz_input.hpp"
#include "vdev/common/register_device.hpp"

namespace {

using qvm::fuzz::check;
using qvm::fuzz::Input;
using qvm::vdev::Ib700;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::optional<std::chrono::seconds> last_arm;
  uint64_t arm_calls = 0;
  Ib700 wdt([&](std::optional<std::chrono::seconds> t) {
    last_arm = t;
    ++arm_calls;
  });
  std::mutex mu;
  qvm::vdev::ByteRegisterDevice<Ib700> bus(wdt, mu);
  bool armed = false;
  static constexpr size_t kSizes[4] = {1, 2, 4, 8};
  Input in(data, size);
  while (!in.empty()) {
    const uint8_t op = in.u8();
    if (op & 1) {
      const bool due = wdt.expire();
      check(due == armed);
      armed = false;
      check(!wdt.expire());
      continue;
    }
    const size_t n = kSizes[(op >> 2) & 3];
    const uint64_t offset = in.u8() % Ib700::kPorts;
    if (offset + n > Ib700::kPorts) continue;  // the bus drops accesses past the range
    uint8_t buf[8] = {};
    if (op & 2) {
      const uint32_t v = in.u32();
      for (size_t i = 0; i < n; ++i) buf[i] = static_cast<uint8_t>(v >> (8 * (i % 4)));
      const uint64_t calls = arm_calls;
      bus.write(offset, std::span<const uint8_t>(buf, n));
      // Byte by byte, as ISA decodes it: the last of 0x441/0x443 written decides.
      uint64_t expected_calls = calls;
      for (size_t i = 0; i < n; ++i) {
        if (offset + i == Ib700::kStopOffset) {
          armed = false;
          ++expected_calls;
        } else if (offset + i == Ib700::kStartOffset) {
          armed = true;
          ++expected_calls;
          check(last_arm == std::chrono::seconds(Ib700::kTimeouts[buf[i] & 15u]));
        }
      }
      check(arm_calls == expected_calls);
      if (arm_calls != calls) check(last_arm.has_value() == armed);
    } else {
      bus.read(offset, std::span<uint8_t>(buf, n));
      for (size_t i = 0; i < n; ++i) check(buf[i] == 0xff);
    }
    check(wdt.armed() == armed);
  }
  return 0;
}
