// Building blocks of the vdev option schemas each device folder declares (its schema.cpp):
// option specs, the checks several devices share, and typed access to a vdev's parsed options.
#pragma once

#include <any>
#include <optional>
#include <string>
#include <string_view>

#include "base/result.hpp"
#include "config/schema.hpp"
#include "config/vm_config.hpp"

namespace qvm::vdev::schema {

config::OptionSpec opt(std::string name, config::OptKind kind, std::string help,
                       std::optional<std::string> def = {}, std::string arg_name = "VALUE");
config::OptionSpec custom(std::string name, Status (*fn)(std::string_view), std::string help,
                          std::optional<std::string> def = {}, std::string arg_name = "VALUE");
config::OptionSpec number(std::string name, std::string help, uint64_t min, uint64_t max,
                          std::optional<std::string> def = {});
config::OptionSpec repeat(config::OptionSpec o);
config::OptionSpec required(config::OptionSpec o);
// An option qvm accepts (QNX configurations use it) without effect: `why` is warned about.
config::OptionSpec no_effect(config::OptionSpec o, std::string why);

// Options several devices share (spec §5, §6): `hostdev`, `delayed`, `sched`, `legacy`.
Status check_hostdev(std::string_view s);
config::OptionSpec hostdev();
config::OptionSpec delayed();
config::OptionSpec sched();
config::OptionSpec legacy();

// Wraps a device's typed parse (Result<T>(const VdevConfig&)) as VdevSchema::parse.
template <typename T>
std::function<Result<std::any>(const config::VdevConfig&)> typed(
    Result<T> (*fn)(const config::VdevConfig&)) {
  return [fn](const config::VdevConfig& v) -> Result<std::any> {
    auto r = fn(v);
    if (!r) return r.error();
    return std::any(std::move(*r));
  };
}

}  // namespace qvm::vdev::schema

namespace qvm::vdev {

// A vdev's options as its schema parsed them once, when the configuration was read
// (VdevConfig::typed); parsed now, with the same function, for a VdevConfig built without the
// parser (tests).
template <typename T>
Result<T> typed_options(const config::VdevConfig& v) {
  if (const T* t = std::any_cast<T>(&v.typed)) return *t;
  if (!v.schema || !v.schema->parse) return make_error("vdev " + v.type + " has no typed options");
  std::any a = QVM_TRY(v.schema->parse(v));
  if (const T* t = std::any_cast<T>(&a)) return *t;
  return make_error("vdev " + v.type + ": typed options of another type");
}

}  // namespace qvm::vdev
