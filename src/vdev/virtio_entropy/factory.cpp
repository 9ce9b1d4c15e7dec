// vdev virtio-entropy (spec §6.4.4; virtio 1.2 §5.4): the `rate` token bucket resumes through the
// transport's retry timer (vdev/api/context.hpp VirtioDeviceBuild::retry_after).
#include "vdev/api/factories.hpp"
#include "vdev/api/schema_util.hpp"
#include "vdev/virtio_entropy/virtio_entropy.hpp"

namespace qvm::vdev {
namespace {

Status create(const config::VdevConfig& v, VdevContext& ctx) {
  VirtioDeviceBuild b;
  b.legacy = v.has("legacy");  // spec §5: virtio 0.9.5 instead of 1.x
  const auto o = QVM_TRY(typed_options<VirtioEntropy::Options>(v));  // virtio_entropy/schema.cpp
  auto dev = std::make_shared<VirtioEntropy>(ctx.clock(), o);
  b.device = dev;
  // A rate-limited device resumes when its token bucket refills.
  if (o.rate_bytes_per_sec) b.retry_after = [raw = dev.get()] { return raw->retry_after(); };
  return ctx.add_virtio(v, std::move(b));
}

}  // namespace

constinit const VdevFactory kVirtioEntropyFactory{"virtio-entropy", create};

}  // namespace qvm::vdev
