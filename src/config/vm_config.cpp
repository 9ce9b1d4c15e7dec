#include "config/vm_config.hpp"

#include "config/variables.hpp"

namespace qvm::config {

std::string_view blob_type_name(BlobType t) {
  switch (t) {
    case BlobType::kAuto:
      return "auto";
    case BlobType::kInitrd:
      return "initrd";
    case BlobType::kData:
      return "data";
    case BlobType::kAcpi:
      return "acpi";
    case BlobType::kFdt:
      return "fdt";
    case BlobType::kModule:
      return "module";
  }
  return "";
}

std::string_view unsupported_action_name(UnsupportedAction a) {
  switch (a) {
    case UnsupportedAction::kAbort:
      return "abort";
    case UnsupportedAction::kFail:
      return "fail";
    case UnsupportedAction::kIgnore:
      return "ignore";
  }
  return "";
}

bool VdevConfig::has(std::string_view option) const {
  auto it = options.find(option);
  return it != options.end() && !it->second.empty();
}

std::optional<std::string> VdevConfig::text(std::string_view option) const {
  auto it = options.find(option);
  if (it != options.end() && !it->second.empty()) return it->second.back().text;
  if (schema) {
    if (const OptionSpec* s = schema->find(option)) return s->default_text;
  }
  return std::nullopt;
}

std::optional<uint64_t> VdevConfig::number(std::string_view option) const {
  auto t = text(option);
  if (!t) return std::nullopt;
  auto n = parse_number(*t);
  if (!n) return std::nullopt;
  return *n;
}

std::optional<bool> VdevConfig::boolean(std::string_view option) const {
  auto t = text(option);
  if (!t) return std::nullopt;
  auto b = parse_bool(*t);
  if (!b) return std::nullopt;
  return *b;
}

std::vector<std::string> VdevConfig::all(std::string_view option) const {
  std::vector<std::string> out;
  auto it = options.find(option);
  if (it != options.end())
    for (const auto& v : it->second) out.push_back(v.text);
  return out;
}

bool VdevConfig::on_pci() const {
  if (!schema || !schema->can_pci) return false;
  if (location) return location->space == AddrSpace::kPci;
  return !(schema->default_loc && (schema->can_mem || schema->can_io));
}

std::optional<std::string> VmConfig::var(std::string_view name) const {
  if (auto it = vars.find(name); it != vars.end()) return it->second.text;
  if (const VariableSpec* s = find_variable(name); s && !s->default_text.empty())
    return std::string(s->default_text);
  return std::nullopt;
}

const VdevConfig* VmConfig::find_vdev_by_name(std::string_view name) const {
  for (const auto& v : vdevs)
    if (v.name && *v.name == name) return &v;
  return nullptr;
}

}  // namespace qvm::config
