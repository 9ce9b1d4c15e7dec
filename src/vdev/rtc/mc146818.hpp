// MC146818A real-time clock and CMOS RAM (Motorola MC146818A datasheet; IBM PC/AT CMOS map).
// Time comes from an injected Clock plus an offset the guest may change by setting the clock.
// Implemented: time/date registers in BCD or binary, 12/24-hour modes, writable with SET on (held
// until SET clears) or off (taking effect at once), registers A-D, periodic (PF), update-ended
// (UF) and alarm (AF) flags and the IRQ (IRQF = PF*PIE + AF*AIE + UF*UIE, re-evaluated when a
// flag is raised or register B is written), the NMI-mask bit of the index port, CMOS memory-size
// fields that firmware reads (0x15-0x18, 0x30-0x31, 0x34-0x35, 0x5b-0x5d) and the vCPU count
// (0x5f). Not implemented: daylight-saving switching, square-wave output, a separate day-of-week
// counter (register 6 follows the date, as in QEMU; a written value is not kept).
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <ctime>
#include <functional>
#include <optional>

#include "base/clock.hpp"
#include "vdev/common/irq_line.hpp"

namespace qvm::vdev {

class Mc146818 {
 public:
  Mc146818(const Clock& clock, IrqLine& irq) : clock_(clock), irq_(irq) {}

  // Fills the CMOS memory-size fields from the guest RAM layout.
  void set_memory_sizes(uint64_t below_4g_bytes, uint64_t above_4g_bytes, uint32_t cpus);
  void preset(uint8_t index, uint8_t value);  // `reg INDEX,VALUE`

  // Port 0x70 (offset 0: index, bit 7 masks NMI) and 0x71 (offset 1: data).
  uint8_t read(uint64_t offset);
  void write(uint64_t offset, uint8_t value);

  // Period of the periodic interrupt from register A, or nullopt when PIE is off.
  std::optional<std::chrono::nanoseconds> periodic_period() const;
  // Called when register A or B changed (the adapter reprograms its timer).
  std::function<void()> on_timer_config;

  void periodic_tick();  // the periodic timer fired
  void second_tick();    // one second passed: update-ended and alarm checks

 private:
  using TimeRegs = std::array<uint8_t, 10>;  // registers 0-9 (alarm bytes 1, 3, 5 unused)

  uint8_t read_reg(uint8_t r);
  void write_reg(uint8_t r, uint8_t v);
  int64_t now() const { return clock_.wall_seconds() + offset_; }
  struct tm now_tm() const;
  uint8_t time_reg(const struct tm& tm, uint8_t r) const;
  TimeRegs time_regs(const struct tm& tm) const;
  void set_time(const TimeRegs& t, int64_t century);
  uint8_t encode(int v) const;
  int decode(uint8_t v) const;
  void raise(uint8_t flag);
  void update_irq();

  const Clock& clock_;
  IrqLine& irq_;
  std::array<uint8_t, 128> cmos_{};
  uint8_t index_ = 0;
  int64_t offset_ = 0;
  uint8_t reg_a_ = 0x26, reg_b_ = 0x02, reg_c_ = 0;
  TimeRegs shadow_{};  // time registers as the guest sees and writes them while SET is on
};

}  // namespace qvm::vdev
