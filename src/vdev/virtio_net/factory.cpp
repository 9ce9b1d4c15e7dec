// vdev virtio-net (spec §6.4.3; virtio 1.2 §5.1): its backend (TAP, peer link, vhost-net) opened
// from the options; dryrun opens none of them and says what the run would.
#include "vdev/api/factories.hpp"
#include "vdev/api/schema_util.hpp"
#include "vdev/virtio_net/virtio_net_setup.hpp"

namespace qvm::vdev {
namespace {

Status create(const config::VdevConfig& v, VdevContext& ctx) {
  VirtioDeviceBuild b;
  b.legacy = v.has("legacy");  // spec §5: virtio 0.9.5 instead of 1.x
  // The options, parsed once with the configuration (virtio_net/schema.cpp); the VM adds the rest.
  NetSetup ns = QVM_TRY(typed_options<NetSetup>(v));
  ns.system = ctx.system_name();
  ns.vdev_name = v.name.value_or("");
  ns.unique_id = v.loc.str();
  VhostPlan plan;
  if (ctx.dryrun()) plan = QVM_TRY(vhost_plan(ns));
  std::string intended = ns.peer.value_or(ns.tapdev ? "tap:" + *ns.tapdev : "none");
  if (ctx.dryrun()) {
    // dryrun creates nothing on the host (no TAP, no socket): a device without a backend.
    ns.peer.reset();
    ns.tapdev.reset();
    if (ns.queues > 1) intended += ", queues " + std::to_string(ns.queues);
    ns.queues = 1;
  }
  auto net = open_virtio_net(ns);
  if (!net) return make_error(net.error().message);
  std::shared_ptr<VirtioNet> dev = *net;
  b.device = dev;
  b.summary =
      " " + dev->describe() +
      (ctx.dryrun() ? " (dryrun: peer " + intended + " not opened, " + plan.text + ")" : "");
  VirtioNet* raw = dev.get();
  b.notify_fd = [raw](uint16_t q, int fd) { return raw->set_notify_fd(q, fd); };
  b.ioeventfd = dev->wants_ioeventfd() || plan.kernel;
  b.queue_ioeventfd = [raw](uint16_t q) { return raw->queue_ioeventfd(q); };
  b.attach = [&ctx, raw](std::function<void(uint16_t)> notify) -> Status {
    raw->set_kick(std::move(notify));
    return ctx.loop().add_fd(raw->poll_fd(), [raw] { raw->on_ready(); });
  };
  return ctx.add_virtio(v, std::move(b));
}

}  // namespace

constinit const VdevFactory kVirtioNetFactory{"virtio-net", create};

}  // namespace qvm::vdev
