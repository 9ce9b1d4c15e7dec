#include "vdev/rtc/mc146818.hpp"

#include <ctime>

namespace qvm::vdev {
namespace {
constexpr uint8_t kBSet = 0x80, kBPie = 0x40, kBAie = 0x20, kBUie = 0x10, kBBinary = 0x04,
                  kB24h = 0x02;
constexpr uint8_t kCIrqf = 0x80, kCPf = 0x40, kCAf = 0x20, kCUf = 0x10;

int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  // Howard Hinnant's algorithm: days since 1970-01-01 for a proleptic Gregorian date.
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3u : 9u)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}
}  // namespace

void Mc146818::set_memory_sizes(uint64_t below_4g, uint64_t above_4g, uint32_t cpus) {
  cmos_[0x15] = 0x80;  // 640 KiB base memory
  cmos_[0x16] = 0x02;
  uint64_t ext_kb = below_4g > (1u << 20) ? (below_4g - (1u << 20)) / 1024 : 0;
  if (ext_kb > 0xfc00) ext_kb = 0xfc00;
  cmos_[0x17] = cmos_[0x30] = static_cast<uint8_t>(ext_kb);
  cmos_[0x18] = cmos_[0x31] = static_cast<uint8_t>(ext_kb >> 8);
  uint64_t above16 = below_4g > (16u << 20) ? (below_4g - (16u << 20)) >> 16 : 0;
  if (above16 > 0xffff) above16 = 0xffff;
  cmos_[0x34] = static_cast<uint8_t>(above16);
  cmos_[0x35] = static_cast<uint8_t>(above16 >> 8);
  uint64_t high = above_4g >> 16;
  cmos_[0x5b] = static_cast<uint8_t>(high);
  cmos_[0x5c] = static_cast<uint8_t>(high >> 8);
  cmos_[0x5d] = static_cast<uint8_t>(high >> 16);
  cmos_[0x5f] = static_cast<uint8_t>(cpus > 0 ? cpus - 1 : 0);
}

void Mc146818::preset(uint8_t index, uint8_t value) {
  if (index == 0x0a) {
    reg_a_ = value & 0x7f;
  } else if (index == 0x0b) {
    reg_b_ = value;
  } else {
    cmos_[index & 0x7f] = value;
  }
}

uint8_t Mc146818::encode(int v) const {
  if (reg_b_ & kBBinary) return static_cast<uint8_t>(v);
  return static_cast<uint8_t>(((v / 10) << 4) | (v % 10));
}

int Mc146818::decode(uint8_t v) const {
  if (reg_b_ & kBBinary) return v;
  return ((v >> 4) & 0x0f) * 10 + (v & 0x0f);
}

uint8_t Mc146818::read(uint64_t offset) {
  if (offset == 0) return 0xff;  // the index port is write-only
  return read_reg(index_);
}

void Mc146818::write(uint64_t offset, uint8_t value) {
  if (offset == 0) {
    index_ = value & 0x7f;  // bit 7 is the NMI mask: no NMI source is modelled
    return;
  }
  write_reg(index_, value);
}

struct tm Mc146818::now_tm() const {
  time_t t = static_cast<time_t>(now());
  struct tm tm {};
  gmtime_r(&t, &tm);
  return tm;
}

// Time register `r` (0-9 or the PC/AT century byte 0x32) of the time `tm`, in the format register
// B selects (datasheet table 3).
uint8_t Mc146818::time_reg(const struct tm& tm, uint8_t r) const {
  switch (r) {
    case 0:
      return encode(tm.tm_sec);
    case 2:
      return encode(tm.tm_min);
    case 4: {
      if (reg_b_ & kB24h) return encode(tm.tm_hour);
      int h = tm.tm_hour % 12 == 0 ? 12 : tm.tm_hour % 12;
      return static_cast<uint8_t>(encode(h) | (tm.tm_hour >= 12 ? 0x80 : 0));
    }
    case 6:
      return encode(tm.tm_wday + 1);
    case 7:
      return encode(tm.tm_mday);
    case 8:
      return encode(tm.tm_mon + 1);
    case 9:
      return encode(tm.tm_year % 100);
    case 0x32:
      return encode((tm.tm_year + 1900) / 100);
    default:
      return 0;  // alarm bytes 1, 3, 5 are not counters
  }
}

Mc146818::TimeRegs Mc146818::time_regs(const struct tm& tm) const {
  TimeRegs t{};
  for (uint8_t i = 0; i < t.size(); ++i) t[i] = time_reg(tm, i);
  return t;
}

// The guest set the clock to `t` (registers 0-9 in register B's format) in `century`: keep the
// difference to the host clock from now on. Day of week (register 6) follows the date. Values
// out of table 3's ranges carry over as the calendar arithmetic goes (the datasheet leaves them
// undefined).
void Mc146818::set_time(const TimeRegs& t, int64_t century) {
  int hour = decode(t[4] & 0x7f);
  if (!(reg_b_ & kB24h)) hour = hour % 12 + ((t[4] & 0x80) ? 12 : 0);
  int64_t days = days_from_civil(century * 100 + decode(t[9]), static_cast<unsigned>(decode(t[8])),
                                 static_cast<unsigned>(decode(t[7])));
  int64_t secs = days * 86400 + hour * 3600 + decode(t[2]) * 60 + decode(t[0]);
  offset_ = secs - clock_.wall_seconds();
}

uint8_t Mc146818::read_reg(uint8_t r) {
  // Alarm bytes are plain registers: SET freezes only the time counters, so they read back what
  // was last written in either state (datasheet "Time, Calendar and Alarm Locations").
  if (r == 1 || r == 3 || r == 5) return cmos_[r];
  if (r <= 9 || r == 0x32) {
    if (reg_b_ & kBSet) return r <= 9 ? shadow_[r] : cmos_[r];
    return time_reg(now_tm(), r);
  }
  switch (r) {
    case 0x0a:
      return reg_a_;  // UIP is never set: updates are instantaneous here
    case 0x0b:
      return reg_b_;
    case 0x0c: {
      uint8_t c = reg_c_;
      reg_c_ = 0;
      irq_.set_level(false);
      return c;
    }
    case 0x0d:
      return 0x80;  // valid RAM and time
    default:
      return cmos_[r];
  }
}

void Mc146818::write_reg(uint8_t r, uint8_t v) {
  if (r == 1 || r == 3 || r == 5) {
    cmos_[r] = v;  // alarm bytes: writable at any time
    return;
  }
  if (r <= 9) {
    if (reg_b_ & kBSet) {
      shadow_[r] = v;  // held until SET clears
      return;
    }
    // Every time byte is writable at any time (datasheet "Time, Calendar and Alarm Locations");
    // register B's SET only holds off the update cycle ("Register B", SET) so that a multi-byte
    // write is not torn by an update. With the clock running the byte takes effect at once, the
    // other bytes and the century keep their current values (QEMU does the same).
    struct tm tm = now_tm();
    TimeRegs t = time_regs(tm);
    t[r] = v;
    set_time(t, (int64_t{tm.tm_year} + 1900) / 100);
    return;
  }
  switch (r) {
    case 0x0a:
      reg_a_ = v & 0x7f;
      if (on_timer_config) on_timer_config();
      return;
    case 0x0b: {
      bool was_set = reg_b_ & kBSet;
      if (!was_set && (v & kBSet)) shadow_ = time_regs(now_tm());
      reg_b_ = v;
      if (was_set && !(v & kBSet)) set_time(shadow_, 20);
      update_irq();  // enable bits changed: IRQF follows at once
      if (on_timer_config) on_timer_config();
      return;
    }
    case 0x0c:
    case 0x0d:
      return;  // read-only
    default:
      cmos_[r] = v;
      return;
  }
}

std::optional<std::chrono::nanoseconds> Mc146818::periodic_period() const {
  unsigned rs = reg_a_ & 0x0f;
  if (!(reg_b_ & kBPie) || rs == 0) return std::nullopt;
  if (rs < 3) rs += 7;  // rates 1 and 2 repeat rates 8 and 9 (datasheet table 5)
  // 32768 Hz divided by 2^(rs-1).
  return std::chrono::nanoseconds(1'000'000'000LL * (1LL << (rs - 1)) / 32768);
}

void Mc146818::raise(uint8_t flag) {
  reg_c_ |= flag;
  update_irq();
}

// Register C, IRQF = PF*PIE + AF*AIE + UF*UIE, and the IRQ pin is driven whenever IRQF is set
// (datasheet "Register C", "Interrupts"): evaluated whenever a flag or an enable bit changes, so
// enabling an interrupt whose flag is already set asserts IRQ at once and disabling the last
// pending one releases it. Reading register C clears IRQF and the flags.
void Mc146818::update_irq() {
  static_assert(kBPie == kCPf && kBAie == kCAf && kBUie == kCUf);
  const bool irqf = (reg_c_ & reg_b_ & (kCPf | kCAf | kCUf)) != 0;
  if (irqf == ((reg_c_ & kCIrqf) != 0)) return;
  reg_c_ = static_cast<uint8_t>(irqf ? reg_c_ | kCIrqf : reg_c_ & ~kCIrqf);
  irq_.set_level(irqf);
}

void Mc146818::periodic_tick() {
  raise(kCPf);
}

void Mc146818::second_tick() {
  if (reg_b_ & kBSet) return;
  raise(kCUf);
  // Alarm: each alarm byte matches, or is a "don't care" value (0xc0-0xff).
  auto match = [&](uint8_t alarm, uint8_t cur) { return (alarm & 0xc0) == 0xc0 || alarm == cur; };
  if (match(cmos_[1], read_reg(0)) && match(cmos_[3], read_reg(2)) && match(cmos_[5], read_reg(4)))
    raise(kCAf);
}

}  // namespace qvm::vdev
