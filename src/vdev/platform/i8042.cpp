#include "vdev/platform/i8042.hpp"

namespace qvm::vdev {
namespace {
constexpr uint8_t kStatusOutFull = 0x01, kStatusSystem = 0x04, kStatusCommand = 0x08;
}

uint8_t I8042::read(uint64_t offset) {
  if (offset == 4) {
    return static_cast<uint8_t>(kStatusSystem | (pending_cmd_ ? kStatusCommand : 0) |
                                (out_ >= 0 ? kStatusOutFull : 0));
  }
  if (offset != 0) return 0xff;
  uint8_t v = out_ >= 0 ? static_cast<uint8_t>(out_) : 0;
  out_ = -1;
  return v;
}

void I8042::write(uint64_t offset, uint8_t value) {
  if (offset == 4) {
    pending_cmd_ = 0;
    switch (value) {
      case 0x20:
        out_ = command_byte_;
        break;
      case 0x60:
      case 0xd1:
        pending_cmd_ = value;
        break;
      case 0xaa:
        out_ = 0x55;
        break;  // controller self-test passed
      case 0xab:
        out_ = 0x00;
        break;  // keyboard interface test passed
      case 0xfe:
        reset_();
        break;  // pulse the reset line
      default:
        break;  // enable/disable ports etc.: nothing to model
    }
    return;
  }
  if (offset != 0) return;
  if (pending_cmd_ == 0x60) {
    command_byte_ = value;
  } else if (pending_cmd_ == 0xd1) {
    if (!(value & 0x01)) reset_();  // output port bit 0 low = system reset
  } else {
    out_ = 0xfa;  // a keyboard command: acknowledge it
  }
  pending_cmd_ = 0;
}

}  // namespace qvm::vdev
