#include "config/variables.hpp"

#include <array>

#include "config/values.hpp"

namespace qvm::config {
namespace {

Status validate_gdb(std::string_view s) {
  QVM_TRY(parse_gdb_endpoint(s));
  return {};
}

Status validate_msg_timeout(std::string_view s) {
  uint64_t v = QVM_TRY(parse_number(s));
  if (v != 0 && (v < 5 || v > 10000))
    return make_error("message-block-timeout must be 0 (infinite) or 5 to 10000 ms, found '" +
                      std::string(s) + "'");
  return {};
}

Status validate_user(std::string_view v) {
  if (v.empty() || v.size() > 256 || v.find_first_of(" \t/") != std::string_view::npos ||
      v.front() == ':' || v.back() == ':' || v.find(':') != v.rfind(':'))
    return make_error("expected NAME, UID, NAME:GROUP or UID:GID");
  return {};
}

// Spec §4 (QNX 7.1/8.0 tables) and design §5 (gdb, acpi-dump-dir).
const std::array kVariables = {
    VariableSpec{"exit-on-halt", VarContext::kGuest, VarType::kBoolean, "on",
                 "a guest HLT gives up the host CPU (off: the vCPU keeps polling)", ""},
    VariableSpec{"vdev-path", VarContext::kGlobal, VarType::kString, "",
                 "directories (colon-separated) searched first for loadable vdevs vdev-TYPE.so; "
                 "then $QVM_VDEV_PATH, then the install directory (docs/vdev-api.md)",
                 ""},
    VariableSpec{"fdt-dump-file", VarContext::kGuest, VarType::kString, "",
                 "write the generated flattened device tree to this file", ""},
    VariableSpec{"acpi-dump-dir", VarContext::kGuest, VarType::kString, "",
                 "write the generated ACPI tables (one .dat file per table) to this directory",
                 "x86"},
    VariableSpec{"user", VarContext::kGlobal, VarType::kString, "",
                 "qvm extension: after set-up, run as this user (NAME, UID, NAME:GROUP or "
                 "UID:GID) with no way back to root (docs/security.md, \"Least privilege\")",
                 "", 0, UINT64_MAX, validate_user, ""},
    VariableSpec{"gdb", VarContext::kGuest, VarType::kString, "",
                 "serve the GDB remote protocol: tcp:[HOST:]PORT[,paused] or unix:PATH[,paused]",
                 "", 0, UINT64_MAX, validate_gdb, ""},
    VariableSpec{
        "grow-heap", VarContext::kGlobal, VarType::kAddress, "",
        "heap growth increment of qvm (accepted; Linux manages the heap itself)", "", 0, UINT64_MAX,
        nullptr,
        "qvm is a Linux process: the C library grows its heap; there is no increment to set"},
    VariableSpec{"message-block-timeout", VarContext::kGlobal, VarType::kNumber, "10000",
                 "milliseconds qvm blocks on a message to another process (0 = infinite)", "", 0,
                 10000, validate_msg_timeout,
                 "qvm sends no blocking inter-process messages on Linux (QNX message passing); "
                 "host I/O is non-blocking or on qvm's own threads"},
    VariableSpec{"vdev-message-block-timeout", VarContext::kVdev, VarType::kNumber, "",
                 "per-vdev override of message-block-timeout", "", 0, 10000, validate_msg_timeout,
                 "qvm sends no blocking inter-process messages on Linux (QNX message passing)"},
    VariableSpec{
        "slog-buffer", VarContext::kGlobal, VarType::kAddress, "4K",
        "size of the system-log buffer", "", 0, UINT64_MAX, nullptr,
        "there is no slog on Linux: qvm logs to the logger destinations (stderr by default)"},
    VariableSpec{"gic-hwassist", VarContext::kGuest, VarType::kBoolean, "on",
                 "use the GIC's hardware virtualization assist", "arm"},
    VariableSpec{"host-paddr-gicd", VarContext::kGuest, VarType::kAddress, "",
                 "host physical address of the GIC distributor", "arm"},
    VariableSpec{"host-paddr-gich", VarContext::kGuest, VarType::kAddress, "",
                 "host physical address of the GIC hypervisor interface", "arm"},
    VariableSpec{"host-paddr-gicv", VarContext::kGuest, VarType::kAddress, "",
                 "host physical address of the GIC virtual CPU interface", "arm"},
    VariableSpec{"counter-offset", VarContext::kGuest, VarType::kAddress, "0xffffffffffffffff",
                 "offset of the guest's generic-timer counter (all ones: start at 0)", "arm"},
    VariableSpec{"legacy-free", VarContext::kGuest, VarType::kBoolean, "off",
                 "present a legacy-free PC: no 8259, PIT or i8042 (refused), none in ACPI (FADT, "
                 "MADT)",
                 "x86"},
    VariableSpec{"posted-interrupts", VarContext::kGuest, VarType::kBoolean, "on",
                 "use posted-interrupt delivery where the host supports it", "x86", 0, UINT64_MAX,
                 nullptr,
                 "the host decides: posted interrupts follow the kvm_intel module parameter "
                 "enable_apicv (AMD: kvm_amd avic)"},
    VariableSpec{"virtual-interrupts", VarContext::kGuest, VarType::kBoolean, "on",
                 "use virtual-interrupt delivery (APICv/AVIC) where the host supports it", "x86", 0,
                 UINT64_MAX, nullptr,
                 "the host decides: APICv/AVIC follow the kvm_intel module parameter enable_apicv "
                 "/ kvm_amd avic"},
    VariableSpec{"debug", VarContext::kVdev, VarType::kBoolean, "off",
                 "include this vdev in SIGUSR1 status reports", "", 0, UINT64_MAX, nullptr,
                 "every vdev is in the SIGUSR1 status report already"},
};

}  // namespace

std::span<const VariableSpec> variable_specs() {
  return kVariables;
}

const VariableSpec* find_variable(std::string_view name) {
  for (const auto& v : kVariables)
    if (v.name == name) return &v;
  return nullptr;
}

std::string_view var_context_name(VarContext c) {
  switch (c) {
    case VarContext::kGlobal:
      return "global";
    case VarContext::kGuest:
      return "guest";
    case VarContext::kCpu:
      return "cpu";
    case VarContext::kVdev:
      return "vdev";
  }
  return "";
}

std::string_view var_type_name(VarType t) {
  switch (t) {
    case VarType::kAddress:
      return "address";
    case VarType::kBoolean:
      return "boolean";
    case VarType::kNumber:
      return "number";
    case VarType::kString:
      return "string";
  }
  return "";
}

Status check_variable_value(const VariableSpec& spec, std::string_view text) {
  if (spec.validate) return spec.validate(text);
  switch (spec.type) {
    case VarType::kBoolean:
      QVM_TRY(parse_bool(text));
      return {};
    case VarType::kAddress:
    case VarType::kNumber: {
      uint64_t v = QVM_TRY(parse_number(text));
      if (v < spec.min || v > spec.max)
        return make_error("value out of range (" + std::to_string(spec.min) + " to " +
                          std::to_string(spec.max) + ")");
      return {};
    }
    case VarType::kString:
      if (text.empty()) return make_error("expected a non-empty string");
      return {};
  }
  return {};
}

std::string variables_help() {
  std::string s = "Variables for 'set NAME VALUE' (context, type, default):\n";
  for (const auto& v : kVariables) {
    std::string line = "  " + std::string(v.name);
    line.resize(30, ' ');
    line += std::string(var_context_name(v.context));
    line.resize(38, ' ');
    line += std::string(var_type_name(v.type));
    line.resize(47, ' ');
    line += v.default_text.empty() ? std::string("-") : std::string(v.default_text);
    line.resize(68, ' ');
    line += std::string(v.help);
    if (!v.arch.empty()) line += " [" + std::string(v.arch) + " only]";
    s += line + "\n";
  }
  return s;
}

Result<GdbEndpoint> parse_gdb_endpoint(std::string_view s) {
  const char* form = "tcp:[HOST:]PORT[,paused] or unix:PATH[,paused]";
  GdbEndpoint ep;
  std::string_view rest = s;
  if (rest.size() > 7 && rest.substr(rest.size() - 7) == ",paused") {
    ep.paused = true;
    rest.remove_suffix(7);
  }
  if (rest.substr(0, 5) == "unix:") {
    ep.unix_socket = true;
    ep.path = std::string(rest.substr(5));
    if (ep.path.empty() || ep.path.size() > 107)
      return make_error(std::string("expected ") + form + "; the socket path must be 1-107 bytes");
    return ep;
  }
  if (rest.substr(0, 4) != "tcp:")
    return make_error(std::string("expected ") + form + ", found '" + std::string(s) + "'");
  rest.remove_prefix(4);
  ep.host = "127.0.0.1";
  if (auto colon = rest.rfind(':'); colon != std::string_view::npos) {
    ep.host = std::string(rest.substr(0, colon));
    rest.remove_prefix(colon + 1);
    if (ep.host.empty()) return make_error(std::string("expected ") + form + ": empty host");
  }
  auto port = parse_number(rest);
  if (!port || *port == 0 || *port > 65535)
    return make_error(std::string("expected ") + form + ": port must be 1-65535, found '" +
                      std::string(rest) + "'");
  ep.port = static_cast<uint16_t>(*port);
  return ep;
}

}  // namespace qvm::config
