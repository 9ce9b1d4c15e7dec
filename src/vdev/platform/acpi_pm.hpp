// ACPI fixed-hardware PM1a event and control blocks (ACPI 6.5 §4.8.3): the power button and
// sleep/soft-off. Offsets 0-1 PM1a_STS, 2-3 PM1a_EN (event block, 4 bytes), 4-5 PM1a_CNT.
// Writing SLP_EN with SLP_TYP = kS5SlpTyp (the DSDT's \_S5 value) powers the VM off.
// SIGTERM/SIGINT press the power button: PWRBTN_STS is set and, when enabled, the SCI (level,
// active high) stays asserted until the guest clears the status bit (write 1 to clear).
#pragma once

#include <cstdint>
#include <functional>

#include "vdev/common/irq_line.hpp"

namespace qvm::vdev {

class AcpiPm {
 public:
  static constexpr uint8_t kS5SlpTyp = 5;
  static constexpr uint16_t kPwrBtnSts = 1u << 8;
  static constexpr uint16_t kSciEn = 1u << 0;

  AcpiPm(IrqLine& sci, std::function<void()> power_off)
      : sci_(sci), power_off_(std::move(power_off)) {}
  uint8_t read(uint64_t offset);
  void write(uint64_t offset, uint8_t value);
  void press_power_button();
  bool sci_enabled() const { return cnt_ & kSciEn; }

 private:
  void update_sci();
  IrqLine& sci_;
  std::function<void()> power_off_;
  uint16_t sts_ = 0, en_ = 0, cnt_ = kSciEn;  // no SMI: the OS owns ACPI from the start
  uint8_t byte_latch_ = 0;                    // low byte of a PM1_CNT/STS write in progress
};

}  // namespace qvm::vdev
