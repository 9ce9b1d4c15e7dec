// Routing of one vCPU exit to the buses, without KVM objects: unit-tested with fabricated exits.
#pragma once

#include <string>

#include "bus/bus.hpp"
#include "kvm/exits.hpp"

namespace qvm::machine {

enum class UnclaimedAction { kIgnore, kFail, kAbort };  // `unsupported reference ...`

struct DispatchResult {
  bool unclaimed = false;  // some access hit no device (reads returned all ones)
  bool abort = false;      // the policy says: stop the VM with exit code 5
  uint64_t address = 0;    // of the first unclaimed access
};

// Handles IoExit and MmioExit (other exits are the caller's). String I/O (count > 1) is split
// into `count` accesses of `size` bytes.
DispatchResult dispatch_io(const kvm::IoExit& e, const bus::Bus& pio, UnclaimedAction policy);
DispatchResult dispatch_mmio(const kvm::MmioExit& e, const bus::Bus& mmio, UnclaimedAction policy);

}  // namespace qvm::machine
