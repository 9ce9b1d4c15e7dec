// virtio-net on vhost-net (linux/vhost.h): hands both queues to the kernel at DRIVER_OK and takes
// them back on reset. See virtio_net.hpp ("vhost-net") and net/vhost.hpp for the ioctl sequence.
//
// Wiring: kick = the machine's KVM ioeventfd of each queue's notify register (virtio 1.2 §4.1.4.4
// PCI notify area / §4.2.2 MMIO QueueNotify), so a guest notification wakes the vhost worker
// without an exit to qvm. Call = an eventfd per queue owned by the device: the kernel writes it
// when the driver wants an interrupt (it evaluates used_event / NO_INTERRUPT itself, §2.7.7,
// §2.7.10); on_ready() reads it and raises the transport's used-buffer notification, which sets
// the MMIO InterruptStatus / PCI ISR bit or sends the queue's MSI-X message (§4.2.3.4, §4.1.5.2).
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>

#include "base/log.hpp"
#include "vdev/virtio_net/virtio_net.hpp"

namespace qvm::vdev {

namespace {
// Ring sizes of a split virtqueue (virtio 1.2 §2.7): descriptor table, driver and device areas
// (the event-index fields included).
uint64_t desc_bytes(uint32_t n) {
  return uint64_t{16} * n;
}
uint64_t avail_bytes(uint32_t n) {
  return 6 + uint64_t{2} * n;
}
uint64_t used_bytes(uint32_t n) {
  return 6 + uint64_t{8} * n;
}
}  // namespace

bool VirtioNet::set_notify_fd(uint16_t q, int fd) {
  std::lock_guard lk(backend_mu_);
  if (q / 2u >= pairs_.size()) return false;  // the control queue (with MQ): the machine's
  Pair& p = pairs_[q / 2];
  p.notify_fd[q % 2] = fd;
  if (!p.vhost) return false;
  if (auto s = poller_.add(fd, EPOLLIN, kNotifyTag | q); !s) {
    log_warn("%s: %s", opts_.name.c_str(), s.error().message.c_str());
    return false;
  }
  p.notify_polled = true;
  return true;
}

bool VirtioNet::vhost_running() const {
  std::lock_guard lk(backend_mu_);
  for (const Pair& p : pairs_)
    if (p.vhost_on) return true;
  return false;
}

Status VirtioNet::start_vhost(Pair& p, size_t index) {
  if (p.notify_fd[0] < 0 || p.notify_fd[1] < 0)
    return make_error("no queue ioeventfds (transport without KVM)");
  net::VhostNet::StartParams sp;
  sp.guest_features = negotiated_;
  sp.vnet_hdr_len = guest_hdr_len_;
  // SAFETY: pointers become the addresses the kernel accesses in qvm's address space.
  for (const auto& r : mem_->regions())
    sp.mem.push_back({r.gpa, r.size, reinterpret_cast<uint64_t>(r.host())});
  for (uint16_t k = 0; k < 2; ++k) {  // vhost-net's own ring 0 = receive, 1 = transmit
    const uint16_t qi = k == 0 ? rxq(index) : txq(index);
    const virtio::Queue& q = queues_[qi];
    if (!q.ready()) return make_error("queue " + std::to_string(qi) + " is not ready");
    auto d = mem_->host_range(q.desc_addr(), desc_bytes(q.size()));
    auto a = mem_->host_range(q.avail_addr(), avail_bytes(q.size()));
    auto u = mem_->host_range(q.used_addr(), used_bytes(q.size()));
    if (!d || !a || !u)
      return make_error("a ring of queue " + std::to_string(qi) + " spans regions");
    net::VhostNet::Queue vq;
    vq.index = k;
    vq.num = q.size();
    vq.base = q.next_avail();
    vq.desc = reinterpret_cast<uint64_t>(d->data());
    vq.avail = reinterpret_cast<uint64_t>(a->data());
    vq.used = reinterpret_cast<uint64_t>(u->data());
    vq.kick_fd = p.notify_fd[k];
    vq.call_fd = p.call_fd[k].get();
    sp.queues.push_back(vq);
  }
  QVM_TRY(p.vhost->start(sp));
  p.vhost_on = true;
  if (p.notify_polled)  // only the vhost worker waits on the kicks now
    for (int fd : p.notify_fd) poller_.remove(fd);
  ++stats_.vhost_starts;
  p.backend->set_rx_enabled(false);  // the kernel reads the TAP queue now
  // Buffers the driver made available before DRIVER_OK may have been notified already (and the
  // notification consumed by the event loop): kick the kernel once per queue.
  for (int fd : p.notify_fd) {
    uint64_t one = 1;
    (void)!::write(fd, &one, sizeof one);
  }
  // One info line per device (the first start); later restarts (guest reboots) at debug level.
  if (stats_.vhost_starts == 1)
    log_info("%s: vhost-net runs the queues (kernel data path)", opts_.name.c_str());
  else
    log_debug("%s: vhost-net runs queue pair %zu", opts_.name.c_str(), index + 1);
  return {};
}

void VirtioNet::stop_vhost() {
  for (size_t i = 0; i < pairs_.size(); ++i) {
    Pair& p = pairs_[i];
    if (!p.vhost_on) continue;
    // §2.4 device reset: the kernel stops using the rings before the transport resets them.
    (void)p.vhost->stop();
    p.vhost_on = false;
    if (p.notify_polled) {  // the device handles this pair's notifications again
      for (uint16_t k = 0; k < 2; ++k)
        // EBADF: the machine is being torn down and closed its ioeventfds before the transport
        // reset the device (its buses outlive the fds); nothing is left to poll.
        if (auto s = poller_.add(p.notify_fd[k], EPOLLIN, kNotifyTag | (2 * i + k));
            !s && s.error().sys_errno != EBADF)
          log_warn("%s: %s", opts_.name.c_str(), s.error().message.c_str());
    }
    // An interrupt the kernel raised meanwhile belongs to the old rings: drop it.
    for (auto& fd : p.call_fd) {
      uint64_t v = 0;
      (void)!::read(fd.get(), &v, sizeof v);
    }
  }
}

void VirtioNet::vhost_called(uint16_t q) {
  if (q / 2u >= pairs_.size()) return;
  Pair& p = pairs_[q / 2];  // the vector is fixed after create(); call_fd is never reassigned
  uint64_t v = 0;
  if (::read(p.call_fd[q % 2].get(), &v, sizeof v) != sizeof v) return;
  {
    std::lock_guard lk(backend_mu_);
    if (!p.vhost_on) return;
    ++stats_.vhost_calls;
  }
  std::lock_guard lk(mu_);
  if (irq_) {
    ++stats_.interrupts;
    irq_->signal_used(q);
  }
}

}  // namespace qvm::vdev
