// Command-line front of qvm: --help/--version, configuration diagnostics, `set ?`, dryrun.
#pragma once

#include <string>
#include <vector>

namespace qvm::app {

// Exit codes (spec §8.3; documented in docs/exit-codes.md).
enum ExitCode : int {
  kExitGuestStop = 0,
  kExitPowerCut = 3,
  kExitWatchdog = 4,
  kExitUnsupported = 5,
  kExitVdevError = 6,
  kExitOtherError = 7,
  kExitFatalBeforeStart = 64,
  kExitConfigError = 65,
  kExitFatalAfterStart = 96,
};

std::string usage();
std::string version_text();
std::string kvm_backend();  // "pvm", "vmx", "svm", or "none"
int run_cli(const std::vector<std::string>& args);

}  // namespace qvm::app
