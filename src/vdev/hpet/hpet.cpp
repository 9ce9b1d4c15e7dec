// See hpet.hpp. Register layout: IA-PC HPET Specification 1.0a §2.3.
#include "vdev/hpet/hpet.hpp"

#include "bus/bus.hpp"

namespace qvm::vdev {
namespace {

constexpr uint64_t kRegCap = 0x000, kRegConfig = 0x010, kRegIsr = 0x020, kRegCounter = 0x0f0;
constexpr uint64_t kTimer0 = 0x100, kTimerStride = 0x20;
// Tn_CONF_CAP bits (§2.3.8)
constexpr uint64_t kLevel = 1u << 1, kIntEnable = 1u << 2, kPeriodic = 1u << 3,
                   kPeriodicCap = 1u << 4, kSize64Cap = 1u << 5, kValSet = 1u << 6,
                   kMode32 = 1u << 8, kRouteShift = 9, kRouteMask = 0x1full << 9;
constexpr uint64_t kTimerWritable = kLevel | kIntEnable | kPeriodic | kMode32 | kRouteMask;

}  // namespace

Hpet::Hpet(uint64_t frequency_hz, uint32_t route_cap, bool legacy, Hooks hooks)
    : freq_(frequency_hz ? frequency_hz : 1),
      period_fs_(1'000'000'000'000'000ull / freq_),
      route_cap_(route_cap),
      legacy_cap_(legacy),
      hooks_(std::move(hooks)) {}

uint64_t Hpet::counter() const {
  if (!enabled()) return base_count_;
  const unsigned __int128 dt = hooks_.now_ns() - base_ns_;
  return base_count_ + static_cast<uint64_t>(dt * freq_ / 1'000'000'000u);
}

uint64_t Hpet::ns_for_ticks(uint64_t ticks) const {
  const unsigned __int128 ns = static_cast<unsigned __int128>(ticks) * 1'000'000'000u / freq_;
  // Beyond an hour the timer is simply looked at again then (a 64-bit comparator far ahead).
  return ns > 3'600'000'000'000ull ? 3'600'000'000'000ull : static_cast<uint64_t>(ns) + 1;
}

uint32_t Hpet::route(unsigned n) const {
  if (legacy_routing() && n < 2) return n == 0 ? irq0_gsi_ : irq8_gsi_;  // IRQ0, IRQ8 (RTC)
  return static_cast<uint32_t>((t_[n].config & kRouteMask) >> kRouteShift);
}

void Hpet::set_line(unsigned n, bool level) {
  Timer& t = t_[n];
  const uint32_t gsi = route(n);
  if (level) {
    t.gsi = gsi;
    t.level_high = true;
    hooks_.irq(gsi, true);
  } else if (t.level_high) {
    t.level_high = false;
    hooks_.irq(t.gsi, false);
  }
}

void Hpet::reschedule(unsigned n) {
  Timer& t = t_[n];
  if (!enabled()) return hooks_.arm(n, std::nullopt);
  const uint64_t now = counter();
  const bool m32 = (t.config & kMode32) != 0;
  const uint64_t ticks =
      m32 ? static_cast<uint32_t>(static_cast<uint32_t>(t.cmp) - static_cast<uint32_t>(now))
          : t.cmp - now;
  // A comparator more than half the counter's range ahead is taken as behind it: due now (as
  // QEMU does; a guest that writes only the low half of a 64-bit comparator, as Linux does,
  // leaves the high half from reset, all ones).
  const bool behind = m32 ? ticks >= (1ull << 31) : ticks >= (1ull << 63);
  hooks_.arm(n, hooks_.now_ns() + (behind ? 1 : ns_for_ticks(ticks)));
}

void Hpet::fire(unsigned n) {
  Timer& t = t_[n];
  if (!(t.config & kIntEnable)) return;
  // Never routed to an input it may use (the route field's reset value need not be one): the
  // interrupt goes nowhere rather than onto another device's line.
  const bool legacy = legacy_routing() && n < 2;
  if (!legacy && !(route_cap_ & (1u << route(n)))) return;
  if (t.config & kLevel) {
    isr_ |= 1ull << n;
    set_line(n, true);
  } else {
    const uint32_t gsi = route(n);
    hooks_.irq(gsi, true);
    hooks_.irq(gsi, false);
  }
}

void Hpet::expire(unsigned n) {
  if (n >= kTimers || !enabled()) return;
  Timer& t = t_[n];
  const uint64_t now = counter();
  const bool m32 = (t.config & kMode32) != 0;
  const uint64_t cmp = m32 ? static_cast<uint32_t>(t.cmp) : t.cmp;
  const uint64_t cur = m32 ? static_cast<uint32_t>(now) : now;
  // Not due yet (a host timer that fired early, or the hour cap): look again later.
  const uint64_t ahead = m32 ? static_cast<uint32_t>(cmp - cur) : cmp - cur;
  if (ahead != 0 && ahead < (m32 ? (1ull << 31) : (1ull << 63))) return reschedule(n);
  fire(n);
  if ((t.config & kPeriodic) && t.period) {
    // The next match after now; a guest too slow or a period too short skips to it (bounded
    // work, no interrupt storm), and the host is never asked for less than kMinHostPeriodNs.
    const uint64_t min_ticks = kMinHostPeriodNs * freq_ / 1'000'000'000u + 1;
    const uint64_t step =
        t.period < min_ticks ? ((min_ticks + t.period - 1) / t.period) * t.period : t.period;
    uint64_t next = t.cmp + step;
    const uint64_t behind = now - t.cmp;
    if (!m32 && behind < (1ull << 63) && behind >= step) next = t.cmp + (behind / step + 1) * step;
    t.cmp = m32 ? static_cast<uint32_t>(next) : next;
    reschedule(n);
  } else {
    hooks_.arm(n, std::nullopt);  // one-shot: done until the comparator is written again
  }
}

uint64_t Hpet::read64(uint64_t reg) {
  if (reg == kRegCap) return (period_fs_ << 32) | (legacy_cap_ ? kCapLow : (kCapLow & ~(1u << 15)));
  if (reg == kRegConfig) return config_;
  if (reg == kRegIsr) return isr_;
  if (reg == kRegCounter) return counter();
  if (reg >= kTimer0 && reg < kTimer0 + kTimers * kTimerStride) {
    const unsigned n = static_cast<unsigned>((reg - kTimer0) / kTimerStride);
    const uint64_t r = (reg - kTimer0) % kTimerStride;
    const Timer& t = t_[n];
    if (r == 0) return t.config | kPeriodicCap | kSize64Cap | (uint64_t{route_cap_} << 32);
    if (r == 8) return (t.config & kMode32) ? static_cast<uint32_t>(t.cmp) : t.cmp;
  }
  return 0;
}

void Hpet::write64(uint64_t reg, uint64_t value, uint64_t mask) {
  if (reg == kRegConfig) {
    const bool was = enabled(), was_legacy = legacy_routing();
    const uint64_t now = counter();
    config_ = (config_ & ~mask) | (value & mask & (legacy_cap_ ? 3u : 1u));
    if (was != enabled()) {
      base_count_ = now;  // the counter stops or starts from where it is
      base_ns_ = hooks_.now_ns();
    }
    for (unsigned n = 0; n < kTimers; ++n) {
      if (was_legacy != legacy_routing() && t_[n].level_high) set_line(n, false);
      reschedule(n);
    }
    if (was_legacy != legacy_routing() && hooks_.legacy) hooks_.legacy(legacy_routing());
    return;
  }
  if (reg == kRegIsr) {
    // Write 1 to clear (level-triggered timers): the line drops.
    const uint64_t clear = value & mask & ((1ull << kTimers) - 1);
    for (unsigned n = 0; n < kTimers; ++n)
      if (clear & (1ull << n)) {
        isr_ &= ~(1ull << n);
        set_line(n, false);
      }
    return;
  }
  if (reg == kRegCounter) {
    if (enabled()) return;  // writable only while halted (§2.3.7)
    base_count_ = (base_count_ & ~mask) | (value & mask);
    return;
  }
  if (reg < kTimer0 || reg >= kTimer0 + kTimers * kTimerStride) return;
  const unsigned n = static_cast<unsigned>((reg - kTimer0) / kTimerStride);
  const uint64_t r = (reg - kTimer0) % kTimerStride;
  Timer& t = t_[n];
  if (r == 0) {
    uint64_t c = (t.config & ~(mask & kTimerWritable)) | (value & mask & kTimerWritable);
    // A route the timer cannot take is not taken (§2.3.8: Tn_INT_ROUTE_CAP).
    const uint32_t rt = static_cast<uint32_t>((c & kRouteMask) >> kRouteShift);
    if (!(route_cap_ & (1u << rt))) c = (c & ~kRouteMask) | (t.config & kRouteMask);
    if (value & mask & kValSet) t.config |= kValSet;
    const bool level_off = (t.config & kLevel) && !(c & kLevel);
    t.config = (t.config & kValSet) | c;
    if (level_off || !(c & kIntEnable)) {
      isr_ &= ~(1ull << n);
      set_line(n, false);
    }
    reschedule(n);
    return;
  }
  if (r == 8) {
    // Comparator (§2.3.9, as QEMU): one-shot or with Tn_VAL_SET: the comparator; periodic: the
    // period as well. VAL_SET clears after a write.
    const bool periodic = (t.config & kPeriodic) != 0;
    uint64_t v = (t.cmp & ~mask) | (value & mask);
    if (t.config & kMode32) v = static_cast<uint32_t>(v);
    if (!periodic || (t.config & kValSet)) t.cmp = v;
    if (periodic) t.period = (t.period & ~mask) | (value & mask);
    t.config &= ~kValSet;
    reschedule(n);
  }
}

void Hpet::read(uint64_t offset, std::span<uint8_t> data) {
  const size_t len = data.size();
  if ((len != 4 && len != 8) || offset % len || offset + len > kSize) {
    for (auto& b : data) b = 0;
    return;
  }
  const uint64_t v = read64(offset & ~7ull) >> ((offset & 4) * 8);
  bus::store_le(data, v);
}

void Hpet::write(uint64_t offset, std::span<const uint8_t> data) {
  const size_t len = data.size();
  if ((len != 4 && len != 8) || offset % len || offset + len > kSize) return;
  const uint64_t v = bus::load_le(data);
  const unsigned shift = static_cast<unsigned>((offset & 4) * 8);
  const uint64_t mask = (len == 8 ? ~0ull : 0xffffffffull) << shift;
  write64(offset & ~7ull, v << shift, mask);
}

}  // namespace qvm::vdev
