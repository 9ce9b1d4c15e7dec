// vdev wdt-ib700 (spec §8.4): its schema; the device itself is not built yet.
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
          .x86_only = true};
}

}  // namespace qvm::vdev
