// Option schemas: each vdev type declares its options (name, kind, default, help), so the parser
// can check them, report unknown ones with the list of valid ones, and print defaults in dryrun.
// The schemas themselves live with the vdevs (src/vdev); the parser receives them by lookup.
#pragma once

#include <any>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.hpp"

namespace qvm::config {

enum class OptKind {
  kFlag,        // no argument
  kNumber,      // parse_number
  kBool,        // parse_bool
  kString,      // any text
  kEnum,        // one of `choices`
  kNumberList,  // "a,b,c"
  kIntrList,    // "pic:line,pic:line"
  kCustom,      // text checked by `validate`
};

struct OptionSpec {
  std::string name;
  OptKind kind = OptKind::kString;
  std::string help;
  std::optional<std::string> default_text;  // shown as "(default)" in dryrun
  bool repeatable = false;                  // values accumulate instead of last-wins
  std::vector<std::string> choices;         // kEnum
  uint64_t min = 0, max = UINT64_MAX;       // kNumber range
  // kCustom: returns an error message describing what was expected.
  std::function<Status(std::string_view)> validate;
  std::string arg_name = "value";  // for help text
  bool required = false;           // must be given
  // Accepted for compatibility but without effect in qvm: the reason, warned about where the
  // option is written (no option is silently ignored).
  std::string no_effect;
};

// How a vdev uses the common `intr` option (spec §5).
enum class IntrPolicy {
  kNone,      // no interrupt
  kOptional,  // has a default
  kRequired,  // always required
  kNonPci,    // required when memory/io mapped, automatic on PCI
  kUpstream,  // a PIC: names its upstream controller (`intr apic`)
};

struct VdevConfig;

// Every member has a default: schemas are written with designated initializers.
struct VdevSchema {
  std::string type{};
  std::string summary{};
  std::vector<OptionSpec> options{};  // device-specific; common options are implicit
  bool can_mem = false, can_io = false, can_pci = false;
  std::optional<std::string> default_loc{};  // e.g. "io:0x3f8"
  IntrPolicy intr = IntrPolicy::kNonPci;
  uint32_t pic_lines = 0;   // > 0: an interrupt controller with this many input lines
  bool multi_intr = false;  // `intr` takes a list (hpet)
  bool x86_only = false;
  // The device's typed options (its options struct in a std::any), parsed once when the
  // configuration is read, with the device's own defaults and limits; an error is reported at
  // the `vdev` entry. Empty: the device has no options struct.
  std::function<Result<std::any>(const VdevConfig&)> parse{};

  const OptionSpec* find(std::string_view name) const;
};

// Looks up a vdev type's schema; nullptr if the type is unknown.
using SchemaLookup = std::function<const VdevSchema*(std::string_view type)>;
// Loads a vdev type from a shared object (`vdev-TYPE.so`) found through `vdev_path` (the value of
// `set vdev-path` where the `vdev` entry is read, or empty) and more places the loader knows:
// its schema, nullptr if no such object exists, or an error naming the object.
using PluginLookup =
    std::function<Result<const VdevSchema*>(std::string_view type, std::string_view vdev_path)>;

// Validates `text` against `spec`; error text says what was expected.
Status check_option_value(const OptionSpec& spec, std::string_view text);

}  // namespace qvm::config
