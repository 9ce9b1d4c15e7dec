// vdev virtio-entropy (spec §6.4.4): its schema and typed options (VirtioEntropy::Options).
#include "vdev/api/schema_util.hpp"
#include "vdev/schemas.hpp"
#include "vdev/virtio_entropy/virtio_entropy.hpp"

namespace qvm::vdev {
namespace {

Result<VirtioEntropy::Options> parse(const config::VdevConfig& v) {
  VirtioEntropy::Options o;
  o.rate_bytes_per_sec = v.number("rate").value_or(0);
  return o;
}

}  // namespace

config::VdevSchema virtio_entropy_schema() {
  using namespace schema;
  return {.type = "virtio-entropy",
          .summary = "virtio entropy source (Linux: virtio-rng), fed from getrandom()",
          .options = {number("rate", "bytes per second the guest may take (0: unlimited)", 0,
                             UINT32_MAX, "0"),
                      legacy(), delayed()},
          .can_mem = true,
          .can_pci = true,
          .intr = config::IntrPolicy::kNonPci,
          .parse = typed(&parse)};
}

}  // namespace qvm::vdev
