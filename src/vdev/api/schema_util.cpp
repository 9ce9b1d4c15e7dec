#include "vdev/api/schema_util.hpp"

#include "config/values.hpp"

namespace qvm::vdev::schema {

using config::OptionSpec;
using config::OptKind;

OptionSpec opt(std::string name, OptKind kind, std::string help, std::optional<std::string> def,
               std::string arg_name) {
  OptionSpec o;
  o.name = std::move(name);
  o.kind = kind;
  o.help = std::move(help);
  o.default_text = std::move(def);
  o.arg_name = std::move(arg_name);
  return o;
}

OptionSpec custom(std::string name, Status (*fn)(std::string_view), std::string help,
                  std::optional<std::string> def, std::string arg_name) {
  OptionSpec o =
      opt(std::move(name), OptKind::kCustom, std::move(help), std::move(def), std::move(arg_name));
  o.validate = fn;
  return o;
}

OptionSpec number(std::string name, std::string help, uint64_t min, uint64_t max,
                  std::optional<std::string> def) {
  OptionSpec o = opt(std::move(name), OptKind::kNumber, std::move(help), std::move(def), "N");
  o.min = min;
  o.max = max;
  return o;
}

OptionSpec repeat(OptionSpec o) {
  o.repeatable = true;
  return o;
}

OptionSpec required(OptionSpec o) {
  o.required = true;
  return o;
}

OptionSpec no_effect(OptionSpec o, std::string why) {
  o.no_effect = std::move(why);
  return o;
}

Status check_hostdev(std::string_view s) {
  std::string_view p = s;
  if (!p.empty() && (p[0] == '<' || p[0] == '>')) p.remove_prefix(1);
  if (p.empty()) return make_error("expected [<|>]PATH (or - for qvm's stdin/stdout)");
  return {};
}

namespace {

Status check_delayed(std::string_view s) {
  if (s == "forever") return {};
  auto n = config::parse_number(s);
  if (!n) return make_error("expected SECONDS or 'forever', found '" + std::string(s) + "'");
  return {};
}

Status check_sched(std::string_view s) {
  std::string_view t = s;
  if (!t.empty() && (t.back() == 'r' || t.back() == 'f' || t.back() == 'o')) t.remove_suffix(1);
  auto n = config::parse_number(t);
  if (!n || *n > 99)
    return make_error("expected PRIORITY[r|f|o] (0-99), found '" + std::string(s) + "'");
  return {};
}

}  // namespace

OptionSpec hostdev() {
  return custom("hostdev", check_hostdev,
                "host file or device for I/O: - (qvm's stdio), PATH, <PATH input only, "
                ">PATH output only",
                {}, "[<|>]PATH");
}

OptionSpec delayed() {
  return no_effect(custom("delayed", check_delayed,
                          "how long to wait for the host device to appear (no effect in qvm)", {},
                          "SECONDS|forever"),
                   "qvm opens host files and devices when the VM is built; one that does not "
                   "exist yet is an error then (start qvm once it exists)");
}

OptionSpec sched() {
  return no_effect(
      custom("sched", check_sched, "host priority of the device's I/O thread (no effect in qvm)",
             {}, "PRIORITY[r|f|o]"),
      "qvm's device I/O runs on its event-loop thread, scheduled like the qvm "
      "process (set its policy with chrt(1))");
}

OptionSpec legacy() {
  return opt("legacy", OptKind::kFlag, "offer virtio 0.9.5 (legacy) instead of 1.x");
}

}  // namespace qvm::vdev::schema
