// Fuzz target: the MC146818A RTC and CMOS RAM (Motorola MC146818A datasheet: "Address Map",
// "Time, Calendar and Alarm Locations" table 3, registers A-D, "Periodic Interrupt Rate" table 5)
// through its index/data ports 0x70/0x71, with the host's periodic and once-a-second timers
// firing in between and a fake wall clock the input advances: every guest can program the RTC,
// and a guest that sets an absurd date must not break the host side.
// Input: four bytes of starting wall clock (seconds since 1970), then operations {op, ...}.
// op & 7: 0 index write (next byte); 1 data write (next byte); 2 data read; 3 select register
// kRegs[(op >> 3) & 15], then read it (op & 0x80) or write the next byte; 4 periodic_tick()
// ((op >> 3) & 7) + 1 times; 5 one second passes: second_tick(); 6 the clock advances by the
// next le16 seconds; 7 index port read.
// Properties: no crash, hang or sanitizer report (time arithmetic on any guest-set date);
// periodic_period() is set exactly when PIE is on and RS is not 0, and then is the table 5 rate
// for the 32.768 kHz time base (122.070 us to 500 ms); register A (bit 7 UIP read-only), B and
// CMOS RAM read back what was written, D reads VRT; with SET clear the time and calendar
// registers are in range in the selected BCD/binary and 12/24-hour format, a valid time set
// through SET reads back unchanged until the clock moves, and so does a valid seconds, minutes or
// hours byte written with SET clear (every time byte is writable at any time); alarm bytes read
// back what was written, SET or not; register C has bits 3:0 clear, its PF and UF flags say
// whether a periodic tick or an update happened since it was last read, its IRQF bit is the IRQ
// line's level and follows IRQF = PF*PIE + AF*AIE + UF*UIE also when enable bits change, reading
// it lowers the line, and a flag raised with its enable bit set raises the line.
// fuzz/corpus/mc146818/finding_*.bin are inputs that broke these checks in an earlier model.
#include "vdev/rtc/mc146818.hpp"

#include <array>
#include <chrono>
#include <cstdint>

#include "fuzz_input.hpp"

namespace {

using qvm::fuzz::check;
using qvm::fuzz::Input;
using qvm::vdev::Mc146818;
using namespace std::chrono_literals;

constexpr uint8_t kBSet = 0x80, kBPie = 0x40, kBUie = 0x10, kBBinary = 0x04, kB24h = 0x02;
constexpr uint8_t kCIrqf = 0x80, kCPf = 0x40, kCAf = 0x20, kCUf = 0x10;
constexpr uint8_t kRegs[16] = {0x00, 0x01, 0x02, 0x04, 0x06, 0x07, 0x08, 0x09,
                               0x0a, 0x0b, 0x0b, 0x0c, 0x0c, 0x0d, 0x32, 0x50};
constexpr uint8_t kTimeRegs[6] = {0x00, 0x02, 0x04, 0x07, 0x08, 0x09};

struct FakeIrq final : qvm::vdev::IrqLine {
  bool level = false;
  void set_level(bool high) override { level = high; }
};

struct Shadow {
  uint8_t index = 0;
  uint8_t a = 0x26, b = kB24h;
  std::array<int, 128> ram;      // CMOS bytes (and alarm bytes 1, 3, 5) written, -1 if unknown
  std::array<int, 10> set_time;  // time bytes as they stand while SET is on
  std::array<int, 10> expect;    // time bytes that must read back (set, no time passed since)
  bool pf = false, uf = false;   // a flag raised since register C was last read
  bool unmodelled = false;       // the guest wrote a time byte the harness cannot follow
  Shadow() {
    ram.fill(-1);
    set_time.fill(-1);
    expect.fill(-1);
  }
};

int decode(uint8_t v, uint8_t b) {
  return (b & kBBinary) ? v : ((v >> 4) & 0x0f) * 10 + (v & 0x0f);
}

bool valid_digits(uint8_t v, uint8_t b) {
  return (b & kBBinary) || ((v & 0x0f) <= 9 && (v >> 4) <= 9);
}

// Whether `v` is a valid value of time register `r` in the format register B selects (table 3).
bool in_range(uint8_t r, uint8_t v, uint8_t b) {
  if (r == 0x04 && !(b & kB24h)) {
    const auto h = static_cast<uint8_t>(v & 0x7f);
    return valid_digits(h, b) && decode(h, b) >= 1 && decode(h, b) <= 12;
  }
  if (!valid_digits(v, b)) return false;
  const int d = decode(v, b);
  switch (r) {
    case 0x00:
    case 0x02:
      return d <= 59;
    case 0x04:
      return d <= 23;
    case 0x06:
      return d >= 1 && d <= 7;
    case 0x07:
      return d >= 1 && d <= 31;
    case 0x08:
      return d >= 1 && d <= 12;
    case 0x09:
      return d <= 99;
    default:
      return true;
  }
}

bool valid_date(const std::array<int, 10>& t, uint8_t b) {
  for (uint8_t r : kTimeRegs)
    if (t[r] < 0 || !in_range(r, static_cast<uint8_t>(t[r]), b)) return false;
  const int year = 2000 + decode(static_cast<uint8_t>(t[9]), b);
  const int month = decode(static_cast<uint8_t>(t[8]), b);
  static constexpr int kDays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const bool leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
  const int days = kDays[month - 1] + (month == 2 && leap ? 1 : 0);
  return decode(static_cast<uint8_t>(t[7]), b) <= days;
}

struct Harness {
  qvm::FakeClock clock;
  FakeIrq irq;
  Mc146818 rtc{clock, irq};
  Shadow s;

  void check_period() {
    const auto p = rtc.periodic_period();
    const unsigned rs = s.a & 0x0fu;
    check(p.has_value() == ((s.b & kBPie) && rs != 0));
    if (!p) return;
    check(*p >= 122070ns && *p <= 500ms);
    const unsigned tap = rs < 3 ? rs + 7 : rs;  // table 5: rates 1 and 2 repeat 8 and 9
    check(p->count() == 1'000'000'000LL * (1LL << (tap - 1)) / 32768);
  }

  void time_passed() { s.expect.fill(-1); }

  void write_index(uint8_t v) {
    rtc.write(0, v);
    s.index = v & 0x7f;
  }

  uint8_t peek(uint8_t r) {  // a side-effect-free register (not C) read; restores the index
    rtc.write(0, r);
    const uint8_t v = rtc.read(1);
    rtc.write(0, s.index);
    return v;
  }

  void write_data(uint8_t v) {
    const uint8_t r = s.index;
    const uint8_t old_b = s.b;
    rtc.write(1, v);
    if (r <= 9) {
      if (r == 1 || r == 3 || r == 5) {
        s.ram[r] = v;
      } else if (s.b & kBSet) {
        s.set_time[r] = v;
      } else {
        // Written while the clock runs: takes effect (datasheet "Address Map": every time byte
        // is writable). Valid seconds, minutes and hours never carry into other bytes; anything
        // else is not modelled here, and may carry into any byte.
        if (r <= 4 && in_range(r, v, s.b)) {
          s.expect[r] = v;
        } else {
          s.unmodelled = true;
          time_passed();
        }
      }
      return;
    }
    switch (r) {
      case 0x0a:
        s.a = v & 0x7f;
        break;
      case 0x0b:
        s.b = v;
        if ((old_b ^ v) & (kBBinary | kB24h)) time_passed();  // other format: other bytes
        if (!(old_b & kBSet) && (v & kBSet)) {
          // SET freezes the current time for the guest to edit.
          for (uint8_t t = 0; t <= 9; ++t)
            if (t != 1 && t != 3 && t != 5) s.set_time[t] = peek(t);
          time_passed();
        } else if ((old_b & kBSet) && !(v & kBSet)) {
          time_passed();
          if (valid_date(s.set_time, v)) {
            for (uint8_t t : kTimeRegs) s.expect[t] = s.set_time[t];
            s.unmodelled = false;  // a whole valid time again
          }
        }
        break;
      case 0x0c:
      case 0x0d:
        break;  // read-only
      case 0x32:
        break;  // century: computed from the clock while SET is clear
      default:
        s.ram[r] = v;
        break;
    }
  }

  void read_data() {
    const uint8_t r = s.index;
    const bool level_before = irq.level;
    const uint8_t v = rtc.read(1);
    if (r <= 9) {
      const bool alarm = r == 1 || r == 3 || r == 5;
      if (alarm) {
        if (s.ram[r] >= 0) check(v == s.ram[r]);
      } else if (s.b & kBSet) {
        if (s.set_time[r] >= 0) check(v == s.set_time[r]);
      } else {
        if (!s.unmodelled) check(in_range(r, v, s.b));
        if (s.expect[r] >= 0) check(v == s.expect[r]);
      }
      return;
    }
    switch (r) {
      case 0x0a:
        check(v == s.a);  // UIP reads 0: updates are instantaneous
        break;
      case 0x0b:
        check(v == s.b);
        break;
      case 0x0c:
        check((v & 0x0f) == 0);
        check(((v & kCIrqf) != 0) == level_before);
        check(!(v & kCIrqf) || (v & (kCPf | kCAf | kCUf)));
        check(((v & kCIrqf) != 0) == ((v & s.b & 0x70) != 0));
        check(((v & kCPf) != 0) == s.pf);
        check(((v & kCUf) != 0) == s.uf);
        check(!(v & kCAf) || (v & kCUf));  // alarms are checked at updates
        check(!irq.level);
        s.pf = s.uf = false;
        break;
      case 0x0d:
        check(v == 0x80);  // VRT
        break;
      case 0x32:
        break;
      default:
        if (s.ram[r] >= 0) check(v == s.ram[r]);
        break;
    }
  }

  void advance(int64_t seconds) {
    if (seconds == 0) return;
    clock.wall += seconds;
    clock.mono += std::chrono::seconds(seconds);
    time_passed();
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Input in(data, size);
  Harness h;
  h.clock.wall = in.u32();
  h.rtc.set_memory_sizes(uint64_t{3} << 30, uint64_t{1} << 32, 4);
  h.rtc.on_timer_config = [&h] {
    const auto p = h.rtc.periodic_period();  // shadow not updated yet: range only
    if (p) check(*p >= 122070ns && *p <= 500ms);
  };
  while (!in.empty()) {
    const uint8_t op = in.u8();
    switch (op & 7) {
      case 0:
        h.write_index(in.u8());
        break;
      case 1:
        h.write_data(in.u8());
        break;
      case 2:
        h.read_data();
        break;
      case 3:
        h.write_index(kRegs[(op >> 3) & 15]);
        if (op & 0x80) {
          h.read_data();
        } else {
          h.write_data(in.u8());
        }
        break;
      case 4:
        for (int i = 0; i <= ((op >> 3) & 7); ++i) {
          h.rtc.periodic_tick();
          h.s.pf = true;
          if (h.s.b & kBPie) check(h.irq.level);
        }
        break;
      case 5:
        h.advance(1);
        h.rtc.second_tick();
        if (!(h.s.b & kBSet)) {
          h.s.uf = true;
          if (h.s.b & kBUie) check(h.irq.level);
        }
        break;
      case 6:
        h.advance(in.u16());
        break;
      default:
        (void)h.rtc.read(0);  // the index port is write-only
        break;
    }
    h.check_period();
  }
  return 0;
}
