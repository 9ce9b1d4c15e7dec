// One vCPU: its fd and the shared kvm_run page (RAII), run() returning typed exits.
#pragma once

#include <linux/kvm.h>

#include <atomic>
#include <cstdint>
#include <vector>

#include "base/result.hpp"
#include "base/unique_fd.hpp"
#include "kvm/exits.hpp"
#include "kvm/kvm.hpp"

namespace qvm::kvm {

class Vcpu {
 public:
  static Result<Vcpu> create(const KvmSystem& sys, const Vm& vm, uint32_t id);
  Vcpu(Vcpu&& o) noexcept;
  Vcpu& operator=(Vcpu&&) = delete;
  Vcpu(const Vcpu&) = delete;
  ~Vcpu();

  uint32_t id() const { return id_; }
  int fd() const { return fd_.get(); }

  // Enters the guest until the next exit that needs user space. I/O and MMIO exits point into
  // kvm_run: a read's data must be filled before the next run().
  Result<VcpuExit> run();
  // Makes the current or next run() return InterruptedExit (call from any thread, then signal
  // the vCPU thread to break a KVM_RUN in progress).
  void request_exit();
  void clear_exit_request();

  Result<kvm_regs> regs() const;
  Status set_regs(const kvm_regs& r);
  Result<kvm_sregs> sregs() const;
  Status set_sregs(const kvm_sregs& s);
  Status set_cpuid(const std::vector<kvm_cpuid_entry2>& entries);
  Result<kvm_mp_state> mp_state() const;
  Result<kvm_fpu> fpu() const;
  Status set_fpu(const kvm_fpu& f);
  Status set_guest_debug(const kvm_guest_debug& d);
  // Makes the next KVM_RUN deliver exception `vector` (no error code) to the guest, through
  // KVM_SET_VCPU_EVENTS: e.g. #UD for an instruction KVM's emulator gave up on.
  Status inject_exception(uint8_t vector);

 private:
  Vcpu() = default;
  UniqueFd fd_;
  kvm_run* run_ = nullptr;
  size_t run_size_ = 0;
  uint32_t id_ = 0;
};

}  // namespace qvm::kvm
