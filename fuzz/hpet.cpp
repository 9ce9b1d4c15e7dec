// Fuzz target: the HPET's registers as a guest drives them (any offset, 1-8 byte accesses; only
// aligned 4/8-byte ones decode), with the clock advancing and host timers expiring in between.
// Input: operations {op, offset le16, value le64}. op & 3: 0 read, 1 write, 2 advance the clock by
// value % 10 ms, 3 expire timer (value % 3) at its armed time; (op >> 2) & 3: size 1/2/4/8.
// Properties: no crash or sanitizer report; the capability register never changes; an armed
// timer is never in the past when armed; the counter never goes backwards while enabled (modulo
// 2^64: it wraps); every
// line a timer drives high is one of its routes (2, 8 or a route-capability input) and a level
// line goes low only after it went high.
#include "vdev/hpet/hpet.hpp"

#include <cstdint>
#include <map>
#include <optional>

#include "fuzz_input.hpp"

namespace {

using qvm::fuzz::check;
using qvm::fuzz::Input;
using qvm::vdev::Hpet;

constexpr uint32_t kRoutes = (1u << 20) | (1u << 23);

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  uint64_t now = 1'000'000;
  std::map<unsigned, std::optional<uint64_t>> armed;
  std::map<uint32_t, bool> level;
  Hpet h(14'318'180, kRoutes, true,
         Hpet::Hooks{[&] { return now; },
                     [&](unsigned n, std::optional<uint64_t> at) {
                       check(n < Hpet::kTimers);
                       check(!at || *at >= now);
                       armed[n] = at;
                     },
                     [&](uint32_t gsi, bool high) {
                       check(gsi == 2 || gsi == 8 || (kRoutes & (1u << gsi)));
                       level[gsi] = high;
                     },
                     [](bool) {}});
  static constexpr size_t kSizes[4] = {1, 2, 4, 8};
  uint8_t cap0[8];
  h.read(0, cap0);
  uint64_t last = h.counter();
  Input in(data, size);
  while (!in.empty()) {
    const uint8_t op = in.u8();
    const uint64_t offset = in.u16() % (Hpet::kSize + 16);
    const uint64_t v = in.u64();
    const size_t n = kSizes[(op >> 2) & 3];
    uint8_t buf[8];
    switch (op & 3) {
      case 0:
        h.read(offset, std::span<uint8_t>(buf, n));
        break;
      case 1:
        for (size_t i = 0; i < n; ++i) buf[i] = static_cast<uint8_t>(v >> (8 * i));
        h.write(offset, std::span<const uint8_t>(buf, n));
        break;
      case 2:
        now += v % 10'000'000;
        break;
      case 3: {
        const unsigned t = static_cast<unsigned>(v % Hpet::kTimers);
        if (armed[t] && *armed[t] >= now) now = *armed[t];
        h.expire(t);
        break;
      }
    }
    uint8_t cap[8];
    h.read(0, cap);
    for (int i = 0; i < 8; ++i) check(cap[i] == cap0[i]);
    const uint64_t c = h.counter();
    uint8_t cfg[8];
    h.read(0x10, cfg);
    // Only a write may move it back; forward is modulo 2^64 (the 64-bit counter wraps).
    if ((cfg[0] & 1) && (op & 3) != 1) check(c - last < (1ull << 63));
    last = c;
  }
  return 0;
}
