// An interrupt line a device drives. The machine binds it to a KVM GSI (KVM_IRQ_LINE); tests
// bind it to a recorder. Level semantics: set_level(true) asserts until set_level(false).
#pragma once

#include <vector>

namespace qvm::vdev {

class IrqLine {
 public:
  virtual ~IrqLine() = default;
  virtual void set_level(bool high) = 0;
  // An edge for edge-triggered ISA interrupts.
  void pulse() {
    set_level(true);
    set_level(false);
  }
};

class NullIrqLine final : public IrqLine {
 public:
  void set_level(bool) override {}
};

class RecordingIrqLine final : public IrqLine {
 public:
  bool level = false;
  int raises = 0;
  void set_level(bool high) override {
    if (high && !level) ++raises;
    level = high;
  }
};

}  // namespace qvm::vdev
