#include "config/schema.hpp"

#include "config/values.hpp"

namespace qvm::config {

const OptionSpec* VdevSchema::find(std::string_view name) const {
  for (const auto& o : options)
    if (o.name == name) return &o;
  return nullptr;
}

Status check_option_value(const OptionSpec& spec, std::string_view text) {
  switch (spec.kind) {
    case OptKind::kFlag:
    case OptKind::kString:
      return {};
    case OptKind::kNumber: {
      uint64_t v = QVM_TRY(parse_number(text));
      if (v < spec.min || v > spec.max)
        return make_error("value " + std::string(text) + " out of range (" +
                          std::to_string(spec.min) + " to " + std::to_string(spec.max) + ")");
      return {};
    }
    case OptKind::kBool:
      QVM_TRY(parse_bool(text));
      return {};
    case OptKind::kEnum: {
      std::string list;
      for (const auto& c : spec.choices) {
        if (c == text) return {};
        list += (list.empty() ? "" : ", ") + c;
      }
      return make_error("expected one of: " + list + "; found '" + std::string(text) + "'");
    }
    case OptKind::kNumberList:
      QVM_TRY(parse_number_list(text));
      return {};
    case OptKind::kIntrList:
      QVM_TRY(parse_intr_list(text));
      return {};
    case OptKind::kCustom:
      return spec.validate ? spec.validate(text) : Status{};
  }
  return {};
}

}  // namespace qvm::config
