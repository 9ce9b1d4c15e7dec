#include "vdev/platform/acpi_pm.hpp"

namespace qvm::vdev {

uint8_t AcpiPm::read(uint64_t offset) {
  uint16_t v = 0;
  switch (offset / 2) {
    case 0:
      v = sts_;
      break;
    case 1:
      v = en_;
      break;
    case 2:
      v = cnt_;
      break;
    default:
      return 0xff;
  }
  return static_cast<uint8_t>(offset % 2 ? v >> 8 : v);
}

void AcpiPm::write(uint64_t offset, uint8_t value) {
  // 16-bit registers arrive as two byte writes (low first) from the bus adapter; act on the
  // high byte so SLP_EN sees the whole register.
  if (offset % 2 == 0) {
    byte_latch_ = value;
    if (offset == 0) sts_ = static_cast<uint16_t>(sts_ & ~value);  // write 1 to clear
    if (offset == 2) en_ = static_cast<uint16_t>((en_ & 0xff00) | value);
    if (offset == 4) cnt_ = static_cast<uint16_t>((cnt_ & 0xff00) | value);
    update_sci();
    return;
  }
  uint16_t word = static_cast<uint16_t>((value << 8) | byte_latch_);
  switch (offset) {
    case 1:
      sts_ = static_cast<uint16_t>(sts_ & ~(value << 8));
      break;
    case 3:
      en_ = word;
      break;
    case 5: {
      cnt_ = static_cast<uint16_t>(word & ~(1u << 13));  // SLP_EN reads as zero
      unsigned slp_typ = (word >> 10) & 7;
      if ((word & (1u << 13)) && slp_typ == kS5SlpTyp) power_off_();
      break;
    }
    default:
      break;
  }
  update_sci();
}

void AcpiPm::press_power_button() {
  sts_ |= kPwrBtnSts;
  update_sci();
}

void AcpiPm::update_sci() {
  sci_.set_level((sts_ & en_) != 0);
}

}  // namespace qvm::vdev
