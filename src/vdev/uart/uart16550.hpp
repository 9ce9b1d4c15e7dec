// 16550A UART register model (National Semiconductor PC16550D datasheet, "Register Summary"
// and "Interrupt Identification Register"). Pure state machine: the bus adapter locks it, the
// output sink receives transmitted bytes, and the IrqLine follows "an interrupt is pending".
// Implemented: RBR/THR, IER, IIR/FCR (FIFO mode bits), LCR with DLAB divisor latch, MCR
// (loopback), LSR, MSR, SCR, received-data and THR-empty and line-status interrupts.
// Not implemented: baud-rate timing, FIFO trigger levels and character timeouts (data available
// interrupts fire as soon as a byte is queued), break and parity errors.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <span>

#include "vdev/common/irq_line.hpp"

namespace qvm::vdev {

class Uart16550 {
 public:
  static constexpr size_t kMaxQueued = 4096;  // host input waiting for the guest

  Uart16550(IrqLine& irq, std::function<void(uint8_t)> tx) : irq_(irq), tx_(std::move(tx)) {}

  uint8_t read(uint64_t reg);
  void write(uint64_t reg, uint8_t value);
  // Host input for the guest; returns how many bytes were taken (the rest must be retried).
  size_t receive(std::span<const uint8_t> bytes);
  size_t queued() const { return rx_.size(); }

 private:
  void update_irq();
  uint8_t iir() const;

  IrqLine& irq_;
  std::function<void(uint8_t)> tx_;
  std::deque<uint8_t> rx_;
  uint8_t ier_ = 0, lcr_ = 0, mcr_ = 0, scr_ = 0, fcr_ = 0, lsr_errors_ = 0;
  uint8_t dll_ = 0x0c, dlm_ = 0;  // 9600 baud
  bool thr_pending_ = false;  // THR-empty interrupt pending (cleared by reading IIR or writing THR)
};

}  // namespace qvm::vdev
