// vdev hpet (spec §6.2.3): its schema (the device: hpet.cpp, factory.cpp).
#include "vdev/api/schema_util.hpp"
#include "vdev/schemas.hpp"

namespace qvm::vdev {

config::VdevSchema hpet_schema() {
  using namespace schema;
  return {.type = "hpet",
          .summary = "high-precision event timer",
          .options = {number("frequency", "counter frequency in Hz", 1000, 1000000000, "14318180"),
                      opt("legacy-free", config::OptKind::kFlag,
                          "do not offer legacy replacement routing")},
          .can_mem = true,
          .default_loc = "0xfed00000",
          .intr = config::IntrPolicy::kOptional,
          .multi_intr = true,
          .x86_only = true};
}

}  // namespace qvm::vdev
