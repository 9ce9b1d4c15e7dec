#include "vdev/uart/uart16550.hpp"

namespace qvm::vdev {
namespace {
constexpr uint8_t kIerRx = 0x01, kIerThr = 0x02, kIerLine = 0x04;
constexpr uint8_t kLsrDr = 0x01, kLsrOe = 0x02, kLsrThre = 0x20, kLsrTemt = 0x40;
constexpr uint8_t kLcrDlab = 0x80;
constexpr uint8_t kMcrLoop = 0x10;
}  // namespace

uint8_t Uart16550::iir() const {
  uint8_t fifo = (fcr_ & 0x01) ? 0xc0 : 0x00;
  if ((ier_ & kIerLine) && lsr_errors_) return fifo | 0x06;
  if ((ier_ & kIerRx) && !rx_.empty()) return fifo | 0x04;
  if ((ier_ & kIerThr) && thr_pending_) return fifo | 0x02;
  return fifo | 0x01;  // no interrupt pending
}

void Uart16550::update_irq() {
  irq_.set_level((iir() & 0x01) == 0);
}

uint8_t Uart16550::read(uint64_t reg) {
  uint8_t v = 0xff;
  switch (reg) {
    case 0:
      if (lcr_ & kLcrDlab) return dll_;
      v = 0;
      if (!rx_.empty()) {
        v = rx_.front();
        rx_.pop_front();
      }
      break;
    case 1:
      return (lcr_ & kLcrDlab) ? dlm_ : ier_;
    case 2:
      v = iir();
      if ((v & 0x0f) == 0x02) thr_pending_ = false;  // reading IIR clears the THRE source
      break;
    case 3:
      return lcr_;
    case 4:
      return mcr_;
    case 5:
      v = static_cast<uint8_t>((rx_.empty() ? 0 : kLsrDr) | kLsrThre | kLsrTemt | lsr_errors_);
      lsr_errors_ = 0;  // reading LSR clears the error bits
      break;
    case 6:
      if (mcr_ & kMcrLoop) {
        // Loopback: DTR->DSR, RTS->CTS, OUT1->RI, OUT2->DCD.
        v = static_cast<uint8_t>(((mcr_ & 0x01) << 5) | ((mcr_ & 0x02) << 3) |
                                 ((mcr_ & 0x04) << 4) | ((mcr_ & 0x08) << 4));
      } else {
        v = 0xb0;  // DCD, DSR, CTS asserted: a connected terminal
      }
      return v;
    case 7:
      return scr_;
    default:
      return 0xff;
  }
  update_irq();
  return v;
}

void Uart16550::write(uint64_t reg, uint8_t value) {
  switch (reg) {
    case 0:
      if (lcr_ & kLcrDlab) {
        dll_ = value;
        return;
      }
      if (mcr_ & kMcrLoop) {
        receive(std::span<const uint8_t>(&value, 1));
      } else if (tx_) {
        tx_(value);
      }
      thr_pending_ = true;  // transmitted at once: the holding register is empty again
      break;
    case 1:
      if (lcr_ & kLcrDlab) {
        dlm_ = value;
        return;
      }
      // Enabling the THRE interrupt while THR is empty raises it (datasheet note 2).
      if ((value & kIerThr) && !(ier_ & kIerThr)) thr_pending_ = true;
      ier_ = value & 0x0f;
      break;
    case 2:
      fcr_ = value & 0xc9;
      if (value & 0x02) rx_.clear();  // reset receiver FIFO
      break;
    case 3:
      lcr_ = value;
      return;
    case 4:
      mcr_ = value & 0x1f;
      break;
    case 7:
      scr_ = value;
      return;
    default:
      return;  // LSR and MSR are read-only
  }
  update_irq();
}

size_t Uart16550::receive(std::span<const uint8_t> bytes) {
  size_t n = 0;
  for (uint8_t b : bytes) {
    if (rx_.size() >= kMaxQueued) {
      lsr_errors_ |= kLsrOe;
      break;
    }
    rx_.push_back(b);
    ++n;
  }
  update_irq();
  return n;
}

}  // namespace qvm::vdev
