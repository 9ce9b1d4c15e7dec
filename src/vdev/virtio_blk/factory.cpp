// vdev virtio-blk (spec §6.4.1; virtio 1.2 §5.2): the disk from `hostdev` ([<]PATH), the request
// engine, and io_uring completions reaped on the event loop.
#include "vdev/api/factories.hpp"
#include "vdev/api/schema_util.hpp"
#include "vdev/virtio_blk/virtio_blk.hpp"

namespace qvm::vdev {
namespace {

Status create(const config::VdevConfig& v, VdevContext& ctx) {
  VirtioDeviceBuild b;
  b.legacy = v.has("legacy");  // spec §5: virtio 0.9.5 instead of 1.x
  // Parsed once with the configuration (virtio_blk/schema.cpp).
  const VirtioBlk::Options o = QVM_TRY(typed_options<VirtioBlk::Options>(v));
  auto blk = VirtioBlk::open(o);
  if (!blk) return make_error(blk.error().message);
  b.device = *blk;
  b.summary =
      " hostdev " + v.text("hostdev").value_or("") + " aio " + VirtioBlk::aio_name((*blk)->aio());
  if ((*blk)->completion_fd() >= 0) {
    // io_uring completions are reaped on the event loop (the thread that submits them too).
    VirtioBlk* raw = blk->get();
    b.attach = [&ctx, raw](std::function<void(uint16_t)> notify) -> Status {
      if (ctx.dryrun()) return {};
      ctx.loop().add_poller([raw, notify] { return raw->poll(notify); },
                            std::chrono::microseconds(raw->poll_us()));
      return ctx.loop().add_fd(raw->completion_fd(), [raw] { raw->on_completion(); });
    };
  }
  return ctx.add_virtio(v, std::move(b));
}

}  // namespace

constinit const VdevFactory kVirtioBlkFactory{"virtio-blk", create};

}  // namespace qvm::vdev
