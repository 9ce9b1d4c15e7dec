// What the GDB stub needs from a VM (design §5 "Live GDB"): the machine layer implements it over
// KVM; unit tests and the fuzz target implement it with a fake. Every call is made on qvm's
// event-loop thread while the vCPUs it touches are parked (the stub calls stop_all() before it
// reads or writes anything).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "base/result.hpp"
#include "gdb/x86_regs.hpp"

namespace qvm::gdb {

// x86 debug-register breakpoint (Intel SDM vol. 3 §18.2): DR7's R/W field and length.
struct HwBreakpoint {
  bool enabled = false;
  uint64_t addr = 0;
  uint8_t rw = 0;   // 0 execute, 1 write, 3 read/write (x86 has no read-only watch)
  uint8_t len = 1;  // 1, 2, 4 or 8 bytes (execute: 1)
  bool operator==(const HwBreakpoint&) const = default;
};

// How a vCPU is to run when resumed (KVM_SET_GUEST_DEBUG).
struct DebugState {
  bool enabled = false;  // a client is attached
  bool single_step = false;
  bool sw_breakpoints = false;  // int3 leaves the guest (KVM_GUESTDBG_USE_SW_BP)
  bool inject_bp = false;       // deliver a #BP the guest raised itself (not one of ours)
  HwBreakpoint hw[4];
  bool operator==(const DebugState&) const = default;
};

// A vCPU left KVM_RUN for the debugger (KVM_EXIT_DEBUG).
struct DebugTrap {
  size_t vcpu = 0;
  uint32_t exception = 0;  // 1 #DB, 3 #BP
  uint64_t pc = 0;         // linear address
  uint64_t dr6 = 0;        // #DB: which debug register fired (bits 0-3), single step (bit 14)
};

// The guest's interrupt descriptor table and mode, for catching a stepped instruction's fault.
struct IdtInfo {
  uint64_t base = 0;
  uint16_t limit = 0;
  bool long_mode = false;
  bool protected_mode = false;
};

// What the host's KVM delivers. On PVM hosts (kvm_pvm: guest ring 3 runs natively, ring 0 in
// KVM's instruction emulator; docs/testing.md) a guest int3 is never intercepted — in ring 3 it
// goes to the guest, in ring 0 the emulator fails on it — and neither are ring-3 debug traps, so
// the stub puts Z0 breakpoints in debug registers and refuses steps in ring 3 (whose trap would
// reach the guest) instead.
struct DebugLimits {
  bool sw_breakpoints = true;   // Z0 as int3 (else in a debug register)
  bool user_mode_traps = true;  // steps and debug-register hits while the guest is in ring 3
  std::string why;              // the host's reason, for the error the user sees
};

class Target {
 public:
  virtual ~Target() = default;
  virtual DebugLimits limits() const { return {}; }
  virtual size_t vcpu_count() const = 0;
  // The register set that fits the vCPU's mode now (EFER.LMA: x86-64, else i386).
  virtual Arch arch(size_t vcpu) = 0;
  virtual Result<X86State> read_registers(size_t vcpu) = 0;
  virtual Status write_registers(size_t vcpu, const X86State& s) = 0;
  virtual Result<IdtInfo> idt(size_t vcpu) = 0;
  // Guest-virtual addresses through the vCPU's page tables (guest-physical when paging is off).
  // Returns how many bytes were transferred from the start (fewer at an unmapped page).
  // `monitor phys on` switches every access to guest-physical addresses (`off`: back).
  virtual size_t read_memory(size_t vcpu, uint64_t addr, std::span<uint8_t> out) = 0;
  virtual size_t write_memory(size_t vcpu, uint64_t addr, std::span<const uint8_t> in) = 0;
  virtual void set_physical(bool physical) = 0;
  virtual Status set_debug(size_t vcpu, const DebugState& d) = 0;
  // Execution control: stop_all() returns when every vCPU is parked; resume() lets the listed
  // vCPUs run (the others stay parked) until the machine reports a trap or stop_all().
  virtual void stop_all() = 0;
  virtual void resume(std::span<const size_t> vcpus) = 0;
  // `k`: end the VM (the machine's documented exit code).
  virtual void kill() = 0;
};

}  // namespace qvm::gdb
