// vdev virtio-blk (spec §6.4.1; virtio 1.2 §5.2): the disk from `hostdev` ([<]PATH), the request
// engine, and io_uring completions reaped on the event loop.
#include "config/values.hpp"
#include "vdev/api/factories.hpp"
#include "vdev/virtio_blk/virtio_blk.hpp"

namespace qvm::vdev {
namespace {

Status create(const config::VdevConfig& v, VdevContext& ctx) {
  VirtioDeviceBuild b;
  b.legacy = v.has("legacy");  // spec §5: virtio 0.9.5 instead of 1.x
  VirtioBlk::Options o;
  std::string hostdev = v.text("hostdev").value_or("");
  if (!hostdev.empty() && hostdev[0] == '<') {
    o.read_only = true;
    hostdev = hostdev.substr(1);
  }
  o.path = hostdev;
  std::string dio = v.text("dio").value_or("disable");
  auto dio_bool = config::parse_bool(dio);
  o.direct = dio == "enable" || (dio_bool.ok() && *dio_bool);
  o.threads = static_cast<uint32_t>(v.number("threads").value_or(VirtioBlk::kDefaultThreads));
  o.queues = static_cast<uint16_t>(v.number("queues").value_or(1));
  o.serial = v.text("serial").value_or("");
  o.poll_us = static_cast<uint32_t>(v.number("poll").value_or(VirtioBlk::kDefaultPollUs));
  const std::string aio = v.text("aio").value_or("");
  if (aio == "inline") o.aio = VirtioBlk::Aio::kInline;
  if (aio == "threads") o.aio = VirtioBlk::Aio::kThreads;
  if (aio == "io_uring") o.aio = VirtioBlk::Aio::kUring;
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
