// vdev wdt-ib700 (spec §8.4): its schema and typed options (Ib700Options).
#include "config/values.hpp"
#include "vdev/api/schema_util.hpp"
#include "vdev/schemas.hpp"

namespace qvm::vdev {
namespace {

Status check_action(std::string_view s) {
  for (auto part : config::split(s, ',')) {
    if (part != "dump" && part != "terminate" && part != "reset")
      return make_error("expected [dump,]terminate or [dump,]reset, found '" + std::string(s) +
                        "'");
  }
  return {};
}

Result<Ib700Options> parse(const config::VdevConfig& v) {
  Ib700Options o;
  const std::string action = v.text("action").value_or("terminate");
  QVM_TRY(check_action(action));
  for (auto part : config::split(action, ',')) {
    if (part == "dump") o.dump = true;
    if (part == "reset") o.reset = true;
  }
  return o;
}

}  // namespace

config::VdevSchema wdt_ib700_schema() {
  using namespace schema;
  return {.type = "wdt-ib700",
          .summary = "IB700-compatible watchdog timer",
          .options = {custom("action", check_action, "what to do on expiry", "terminate",
                             "[dump,]terminate|reset")},
          .can_io = true,
          .default_loc = "io:0x441",
          .intr = config::IntrPolicy::kNone,
          .x86_only = true,
          .parse = typed(&parse)};
}

}  // namespace qvm::vdev
