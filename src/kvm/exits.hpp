// Typed vCPU exits (design §3.9): Vcpu::run() turns struct kvm_run into one of these, and
// dispatch_exit() handles it without any KVM object, so it is unit-tested with fabricated exits.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <variant>
#include <vector>

namespace qvm::kvm {

struct IoExit {
  uint16_t port = 0;
  uint8_t size = 0;  // 1, 2 or 4
  bool write = false;
  uint32_t count = 1;       // string I/O repeats
  std::span<uint8_t> data;  // size*count bytes inside kvm_run
};
struct MmioExit {
  uint64_t addr = 0;
  uint8_t len = 0;  // 1..8
  bool write = false;
  std::span<uint8_t> data;  // 8 bytes inside kvm_run
};
struct HltExit {};
struct ShutdownExit {};  // triple fault: the guest asked for a reset the hard way
struct SystemEventExit {
  uint32_t type = 0;  // KVM_SYSTEM_EVENT_*
};
struct InterruptedExit {};  // a signal or immediate_exit ended KVM_RUN
struct InternalErrorExit {
  uint32_t suberror = 0;
  std::vector<uint64_t> data;
};
struct FailEntryExit {
  uint64_t reason = 0;
};
struct DebugExit {
  uint32_t exception = 0;  // 1 #DB, 3 #BP
  uint64_t pc = 0;         // linear address
  uint64_t dr6 = 0;        // #DB: which breakpoint fired, single step (bit 14)
};
// An MSR access KVM left to user space (KVM_CAP_X86_USER_SPACE_MSR, api.rst 8.25): the handler
// sets *error (1: KVM injects #GP) and, for a read, *value.
struct MsrExit {
  uint32_t index = 0;
  bool write = false;
  uint64_t data = 0;  // the value written
  uint8_t* error = nullptr;
  uint64_t* value = nullptr;
};
struct UnknownExit {
  uint32_t reason = 0;
};

using VcpuExit =
    std::variant<IoExit, MmioExit, HltExit, ShutdownExit, SystemEventExit, InterruptedExit,
                 InternalErrorExit, FailEntryExit, DebugExit, MsrExit, UnknownExit>;

std::string describe(const VcpuExit& exit);

}  // namespace qvm::kvm
