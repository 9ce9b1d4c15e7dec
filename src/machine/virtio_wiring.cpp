// The one notification path of virtio devices, whatever their transport (virtio 1.2 §4.1.4.4
// PCI notify area, §4.2.2 MMIO QueueNotify): a KVM ioeventfd per queue on the transport's notify
// register wakes the event loop, which runs the queue (no exit to user space); queues the device
// wants on the vCPU thread get none. A device that stops for lack of host resources (the
// rate-limited entropy device) names when to try again, and a timer of its own resumes it, on
// MMIO and PCI alike.
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>

#include "machine/machine_impl.hpp"

namespace qvm::machine {

Result<std::vector<MachineImpl::WiredNotify>> MachineImpl::wire_virtio(
    const vdev::VirtioDeviceBuild& built, uint16_t nqueues,
    const std::function<NotifyAt(uint16_t)>& where, std::function<void(uint16_t)> handle) {
  std::vector<WiredNotify> wired;
  if (!vm_) return wired;  // dryrun: nothing is registered with KVM
  auto run = std::make_shared<std::function<void(uint16_t)>>(std::move(handle));
  // After a pass over a queue: if the device is waiting for its host resource, come back when
  // it says; otherwise the timer stays off.
  std::function<void()> rearm;
  if (built.retry_after) {
    auto holder = std::make_shared<event::Timer*>(nullptr);
    auto retry = built.retry_after;
    auto timer = QVM_TRY(event::Timer::create(*loop_, [run, retry, holder, nqueues](uint64_t) {
      for (uint16_t q = 0; q < nqueues; ++q) (*run)(q);
      if (*holder) (void)(*holder)->arm(retry().value_or(std::chrono::nanoseconds(0)));
    }));
    *holder = timer.get();
    event::Timer* t = timer.get();
    rearm = [t, retry] { (void)t->arm(retry().value_or(std::chrono::nanoseconds(0))); };
    keep_.push_back(std::shared_ptr<event::Timer>(std::move(timer)));
  }
  for (uint16_t q = 0; q < nqueues && built.ioeventfd; ++q) {
    if (built.queue_ioeventfd && !built.queue_ioeventfd(q)) continue;  // exits to the vCPU
    UniqueFd efd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!efd) return Error::from_errno("eventfd", errno);
    const NotifyAt at = where(q);
    QVM_TRY(vm_->add_ioeventfd(efd.get(), at.addr, at.len, at.io, at.datamatch));
    wired.push_back({efd.get(), q});
    const int fd = efd.get();
    keep_.push_back(std::make_shared<UniqueFd>(std::move(efd)));
    if (built.notify_fd && built.notify_fd(q, fd)) continue;  // the device polls it itself
    QVM_TRY(loop_->add_fd(fd, [fd, run, q, rearm] {
      uint64_t n = 0;
      ssize_t r = ::read(fd, &n, sizeof n);  // drain the count; one pass handles them all
      (void)r;
      (*run)(q);
      if (rearm) rearm();
    }));
  }
  return wired;
}

}  // namespace qvm::machine
