// Prints a VmConfig as configuration text that parses back to the same configuration; values
// that come from defaults carry a "# default" comment (used by `dryrun`).
#pragma once

#include <string>

#include "config/vm_config.hpp"

namespace qvm::config {

std::string print_config(const VmConfig& cfg);
// Quotes a value so the lexer reads it back unchanged.
std::string quote(std::string_view s, bool force = false);

}  // namespace qvm::config
