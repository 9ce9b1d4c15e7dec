// qvm's exit codes (spec §8.3, the QNX qvm's guest.h values; docs/exit-codes.md). One list for
// every layer: the machine stops the VM with them, the command line returns them.
#pragma once

namespace qvm {

enum ExitCode : int {
  // Not an exit status: the VM ends and the command line builds and runs it again from the same
  // configuration in the same process (the watchdog's `action reset`: the board's reset line).
  // A reboot the guest asks for itself still ends qvm with 0 (spec §8.2).
  kRestartInPlace = -1,
  kExitGuestStop = 0,  // ACPI S5, a guest reset request, a triple fault (the reason is logged)
  kExitPowerCut = 3,   // SIGQUIT
  kExitWatchdog = 4,
  kExitUnsupported = 5,  // `unsupported ... abort`
  kExitVdevError = 6,
  kExitOtherError = 7,
  kExitGuestDefinedFirst = 32,  // 32-63: guest- or vdev-defined (testdev: 32 + value)
  kExitGuestDefinedLast = 63,
  kExitFatalBeforeStart = 64,
  kExitConfigError = 65,  // nothing was started
  kExitFatalAfterStart = 96,
};

}  // namespace qvm
