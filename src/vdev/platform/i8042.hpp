// Minimal i8042 keyboard controller (IBM PC/AT technical reference; Linux's i8042 probing).
// Its purpose here, as for the QNX pckeyboard vdev, is the reset line: command 0xFE on port
// 0x64 (or clearing bit 0 of the output port via 0xD1) asks for a system reset. Also answers
// self-test (0xAA -> 0x55), interface test (0xAB -> 0x00), the command byte (0x20/0x60) and
// reports no keyboard data. Offsets: 0 = data port 0x60, 4 = status/command port 0x64.
#pragma once

#include <cstdint>
#include <functional>

namespace qvm::vdev {

class I8042 {
 public:
  explicit I8042(std::function<void()> reset) : reset_(std::move(reset)) {}
  uint8_t read(uint64_t offset);
  void write(uint64_t offset, uint8_t value);

 private:
  std::function<void()> reset_;
  uint8_t command_byte_ = 0x45;  // keyboard interrupt, system flag, translation
  uint8_t pending_cmd_ = 0;      // command waiting for its data byte
  int out_ = -1;                 // output buffer byte, -1 if empty
};

// PS/2 System Control Port A at io 0x92 (IBM PS/2 technical reference): bit 1 = A20 gate (always
// enabled here; guests only ever turn it on), bit 0 = fast reset (writing 1 resets the system).
class SystemControlA {
 public:
  explicit SystemControlA(std::function<void()> reset) : reset_(std::move(reset)) {}
  uint8_t read(uint64_t) { return 0x02; }
  void write(uint64_t, uint8_t v) {
    if (v & 0x01) reset_();
  }

 private:
  std::function<void()> reset_;
};

// qvm's test device (like QEMU's isa-debug-exit): a guest write of N ends the VM with exit
// code 32+N (N clamped to 0-31, the QNX custom termination range 32-63).
class TestDev {
 public:
  explicit TestDev(std::function<void(int)> exit) : exit_(std::move(exit)) {}
  uint8_t read(uint64_t) { return 0; }
  void write(uint64_t offset, uint8_t value) {
    if (offset == 0) exit_(32 + (value > 31 ? 31 : value));
  }

 private:
  std::function<void(int)> exit_;
};

// The PCI reset control register at port 0xCF9 (Intel ICH datasheet, "Reset Control Register"):
// a write with bit 2 (RST_CPU) set resets the system. The FADT names it as RESET_REG.
class ResetControl {
 public:
  explicit ResetControl(std::function<void()> reset) : reset_(std::move(reset)) {}
  uint8_t read(uint64_t) { return value_; }
  void write(uint64_t, uint8_t v) {
    value_ = v & 0x0e;
    if (v & 0x04) reset_();
  }

 private:
  std::function<void()> reset_;
  uint8_t value_ = 0;
};

}  // namespace qvm::vdev
