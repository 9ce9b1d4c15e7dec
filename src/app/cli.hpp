// Command-line front of qvm: --help/--version, configuration diagnostics, `set ?`, dryrun.
#pragma once

#include <string>
#include <vector>

#include "base/exit_code.hpp"

namespace qvm::app {

std::string usage();
std::string version_text();
std::string kvm_backend();  // "pvm", "vmx", "svm", or "none"
int run_cli(const std::vector<std::string>& args);

}  // namespace qvm::app
