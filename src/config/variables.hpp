// `set` variables (spec §4 plus qvm's own: gdb, acpi-dump-dir). Each belongs to a context:
// global (the qvm process), guest, cpu (the current `cpu`) or vdev (the current `vdev`).
#pragma once

#include <span>
#include <string>
#include <string_view>

#include "config/schema.hpp"

namespace qvm::config {

enum class VarContext { kGlobal, kGuest, kCpu, kVdev };
enum class VarType { kAddress, kBoolean, kNumber, kString };

struct VariableSpec {
  std::string_view name;
  VarContext context;
  VarType type;
  std::string_view default_text;  // empty: no default (unset)
  std::string_view help;
  std::string_view arch;  // "" = all, "x86", "arm"
  uint64_t min = 0, max = UINT64_MAX;
  Status (*validate)(std::string_view) = nullptr;
  // Non-empty: accepted for compatibility, and `set NAME` warns with this reason where it is
  // written (no silent options: docs/config-language.md).
  std::string_view no_effect = "";
};

std::span<const VariableSpec> variable_specs();
const VariableSpec* find_variable(std::string_view name);
std::string_view var_context_name(VarContext c);
std::string_view var_type_name(VarType t);
// Checks a value's syntax against its variable's type and range.
Status check_variable_value(const VariableSpec& spec, std::string_view text);
// Text for `qvm set ?`.
std::string variables_help();

// `set gdb` syntax: tcp:[HOST:]PORT[,paused] | unix:PATH[,paused] (design §5).
struct GdbEndpoint {
  bool unix_socket = false;
  std::string host;  // tcp: default 127.0.0.1
  uint16_t port = 0;
  std::string path;  // unix
  bool paused = false;
};
Result<GdbEndpoint> parse_gdb_endpoint(std::string_view s);

}  // namespace qvm::config
