// The configuration front end: command-line arguments and `@file` includes -> tokens ->
// entries in contexts (spec §2.3) -> a validated VmConfig. All problems are reported as
// Diagnostics with file:line:column; nothing is partially applied by the caller when any
// error is present.
#pragma once

#include <string>
#include <vector>

#include "config/diagnostics.hpp"
#include "config/schema.hpp"
#include "config/source.hpp"
#include "config/vm_config.hpp"

namespace qvm::config {

struct ParseInput {
  std::vector<std::string> args;        // command-line entries (argv[1..])
  EnvLookup env;                        // for ${NAME}; empty: nothing is set
  SourceLoader* loader = nullptr;       // for @file; required if any include is used
  SchemaLookup schemas;                 // vdev types
  PluginLookup plugins;                 // types that are not built in (optional)
  std::vector<std::string> vdev_types;  // known type names, for "did you mean" lists
};

struct ParseOutput {
  VmConfig config;
  Diagnostics diags;
  bool ok() const { return !diags.has_errors(); }
};

ParseOutput parse_config(const ParseInput& in);

}  // namespace qvm::config
