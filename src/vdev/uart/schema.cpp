// vdev ser8250 (spec §6.2.7): its schema and typed options.
#include "vdev/api/schema_util.hpp"
#include "vdev/schemas.hpp"

namespace qvm::vdev {
namespace {

Result<Ser8250Options> parse(const config::VdevConfig& v) {
  return Ser8250Options{v.all("hostdev")};
}

}  // namespace

config::VdevSchema ser8250_schema() {
  using namespace schema;
  return {.type = "ser8250",
          .summary = "16550A UART",
          .options = {repeat(hostdev()),
                      no_effect(number("batch",
                                       "batch output over this many microseconds (no "
                                       "effect in qvm)",
                                       0, 1000000, "0"),
                                "qvm hands the guest's output to the host as it comes, through a "
                                "buffer that never blocks the vCPU (docs/vm-core.md)"),
                      delayed(), sched()},
          .can_io = true,
          .default_loc = "io:0x3f8",
          .intr = config::IntrPolicy::kRequired,
          .parse = typed(&parse)};
}

}  // namespace qvm::vdev
