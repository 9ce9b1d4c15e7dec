// Loadable virtio devices (include/qvm/vio.h; docs/vdev-api.md "Virtio devices"): the vdev's
// vio_ops behind qvm's VirtioDevice interface, so qvm's own transports (MMIO and PCI, ioeventfd
// and irqfd/MSI-X) serve it. Queue access is handed out as host views of the chain's buffers,
// built by the queue library's checked iovec path.
#include <qvm/vio.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "vdev/plugin/internal.hpp"
#include "virtio/queue/chain.hpp"
#include "virtio/virtio_defs.hpp"

namespace qvm::vdev::plugin {

namespace {

class PluginVirtioDevice;
// The device whose notify()/activate() runs on this thread: the only time queues may be used.
thread_local PluginVirtioDevice* tl_active = nullptr;

class PluginVirtioDevice final : public virtio::VirtioDevice {
 public:
  PluginVirtioDevice(Instance& in, const vio_description& d, const vio_ops& ops)
      : in_(in), desc_(d), ops_(ops) {
    sizes_.assign(d.queue_size, d.queue_size + d.num_queues);
  }
  uint32_t device_type() const override { return desc_.device_type; }
  uint64_t device_features() const override { return desc_.device_features; }
  std::span<const uint16_t> queue_max_sizes() const override { return sizes_; }
  uint32_t config_size() const override { return desc_.device_config_size; }
  void read_config(uint32_t offset, std::span<uint8_t> data) const override {
    std::memset(data.data(), 0, data.size());
    if (!ops_.config_read) return;
    in_.lock();
    ops_.config_read(&in_.pub, offset, data.data(), static_cast<unsigned>(data.size()));
    in_.unlock();
  }
  void write_config(uint32_t offset, std::span<const uint8_t> data) override {
    if (!ops_.config_write) return;
    in_.lock();
    ops_.config_write(&in_.pub, offset, data.data(), static_cast<unsigned>(data.size()));
    in_.unlock();
  }
  Status activate(virtio::ActivationContext& ctx) override {
    mem_ = &ctx.mem;
    queues_ = ctx.queues;
    irq_ = &ctx.interrupt;
    int e = 0;
    if (ops_.activate) e = run([&] { return ops_.activate(&in_.pub, ctx.features); });
    if (e != 0) {
      mem_ = nullptr;
      queues_ = {};
      irq_ = nullptr;
      return make_error(in_.name + ": activate failed: " + std::strerror(e));
    }
    return {};
  }
  void reset() override {
    if (ops_.reset) {
      in_.lock();
      ops_.reset(&in_.pub);
      in_.unlock();
    }
    mem_ = nullptr;
    queues_ = {};
    irq_ = nullptr;
  }
  void process_queue(uint16_t index) override {
    if (!mem_ || !ops_.notify) return;
    (void)run([&] {
      ops_.notify(&in_.pub, index);
      return 0;
    });
  }

  int pop(unsigned q, vio_chain* out) {
    if (q >= queues_.size() || !out || !mem_) return fail(EINVAL);
    virtio::Queue& queue = queues_[q];
    // next() returns malformed chains to the driver itself (length 0, rate-limited log); a chain
    // with more buffers than vio_chain holds is returned the same way.
    for (uint32_t skipped = 0; skipped <= queue.size(); ++skipped) {
      auto chain = queue.next(*mem_);
      if (!chain) return 0;
      std::vector<iovec> rd, wr;
      virtio::ChainReader r(*mem_, *chain);
      virtio::ChainWriter w(*mem_, *chain);
      auto nr = r.iovecs(r.remaining(), rd);
      auto nw = w.iovecs(w.remaining(), wr);
      if (!nr || !nw || rd.size() + wr.size() > VIO_MAX_SEGS) {
        (void)queue.add_used(*mem_, chain->head, 0);
        pushed_[q] = true;
        uint64_t supp = 0;
        if (in_.log_rl.allow(std::chrono::steady_clock::now(), &supp))
          log_warn(
              "vdev %s: queue %u: a chain of %zu buffers returned unused (at most %d) (%llu "
              "similar suppressed)",
              in_.name.c_str(), q, rd.size() + wr.size(), VIO_MAX_SEGS,
              static_cast<unsigned long long>(supp));
        continue;
      }
      out->head = chain->head;
      out->nsegs = 0;
      for (const iovec& v : rd)
        out->seg[out->nsegs++] = vio_seg{v.iov_base, static_cast<uint32_t>(v.iov_len), 0};
      for (const iovec& v : wr)
        out->seg[out->nsegs++] = vio_seg{v.iov_base, static_cast<uint32_t>(v.iov_len), 1};
      return 1;
    }
    return 0;
  }
  int push(unsigned q, uint16_t head, uint32_t written) {
    if (q >= queues_.size() || !mem_) return fail(EINVAL);
    if (auto s = queues_[q].add_used(*mem_, head, written); !s) return fail(EIO);
    pushed_[q] = true;
    return 0;
  }

 private:
  static int fail(int e) {
    errno = e;
    return -1;
  }
  // Runs a callback with queue access allowed, then interrupts the driver once per queue that got
  // buffers back and wants to hear about it (virtio 1.2 §2.7.7, §2.7.10).
  template <typename F>
  int run(F fn) {
    PluginVirtioDevice* outer = tl_active;
    tl_active = this;
    in_.lock();
    const int e = fn();
    in_.unlock();
    tl_active = outer;
    for (size_t q = 0; q < queues_.size() && q < VIO_MAX_QUEUES; ++q) {
      if (!pushed_[q]) continue;
      pushed_[q] = false;
      if (mem_ && irq_ && queues_[q].needs_notification(*mem_))
        irq_->signal_used(static_cast<uint16_t>(q));
    }
    return e;
  }

  Instance& in_;
  vio_description desc_;
  vio_ops ops_;
  std::vector<uint16_t> sizes_;
  memory::GuestMemory* mem_ = nullptr;
  std::span<virtio::Queue> queues_;
  virtio::VirtioInterrupt* irq_ = nullptr;
  bool pushed_[VIO_MAX_QUEUES] = {};

  friend PluginVirtioDevice* active_for(vdev_t*);
};

PluginVirtioDevice* active_for(vdev_t* vdp) {
  PluginVirtioDevice* d = tl_active;
  Instance* in = instance_of(vdp);
  return d && in && &d->in_ == in ? d : nullptr;
}

}  // namespace
}  // namespace qvm::vdev::plugin

using qvm::vdev::plugin::active_for;
using qvm::vdev::plugin::instance_of;

extern "C" {

int vio_init(vdev_t* vdp, const struct vio_description* desc, const struct vio_ops* ops) {
  auto* in = instance_of(vdp);
  if (!in || !desc || !ops) {
    errno = EINVAL;
    return -1;
  }
  if (!in->in_options_end) {
    errno = EPERM;
    return -1;
  }
  if (in->vio) {
    errno = EEXIST;
    return -1;
  }
  bool ok = desc->device_type != 0 && desc->num_queues >= 1 && desc->num_queues <= VIO_MAX_QUEUES &&
            desc->device_config_size <= VIO_MAX_CONFIG && (desc->device_features >> 24) == 0;
  for (unsigned q = 0; ok && q < desc->num_queues; ++q) {
    const uint16_t s = desc->queue_size[q];
    ok = s != 0 && (s & (s - 1)) == 0 && s <= qvm::virtio::Queue::kMaxSize;
  }
  if (!ok) {
    errno = EINVAL;
    return -1;
  }
  in->vio = std::make_shared<qvm::vdev::plugin::PluginVirtioDevice>(*in, *desc, *ops);
  return 0;
}

int vio_queue_pop(vdev_t* vdp, unsigned queue, struct vio_chain* chain) {
  auto* d = active_for(vdp);
  if (!d) {
    errno = EPERM;
    return -1;
  }
  return d->pop(queue, chain);
}

int vio_queue_push(vdev_t* vdp, unsigned queue, uint16_t head, uint32_t written) {
  auto* d = active_for(vdp);
  if (!d) {
    errno = EPERM;
    return -1;
  }
  return d->push(queue, head, written);
}

}  // extern "C"
