// virtio vdevs (spec §6.4) on the virtio-mmio transport (virtio 1.2 §4.2): a vdev with `loc` and
// `intr` is memory-mapped (spec §5). Hot paths stay in the kernel: each queue's QueueNotify
// register is a KVM ioeventfd (datamatch = queue index) that wakes the event loop, and the
// interrupt is a KVM irqfd (edge; the DSDT describes it as such), so neither a notification nor an
// interrupt costs an exit to user space.
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>

#include "base/log.hpp"
#include "base/qnx_ids.hpp"
#include "machine/machine_impl.hpp"
#include "virtio/transport/mmio.hpp"

namespace qvm::machine {

Status MachineImpl::add_virtio(const config::VdevConfig& v, vdev::VirtioDeviceBuild built) {
  if (v.on_pci()) return add_virtio_pci(v, std::move(built));
  return add_virtio_mmio(v, std::move(built));
}

Status MachineImpl::add_virtio_mmio(const config::VdevConfig& v, vdev::VirtioDeviceBuild built) {
  if (v.location->space != config::AddrSpace::kMem)
    return make_error("virtio-mmio needs a memory location");
  uint64_t base = v.location->addr;
  if (base & 0xfff) return make_error("a virtio-mmio device must be 4 KiB aligned");
  if (base + virtio::MmioTransport::kRegionSize > (1ull << 32))
    return make_error("a virtio-mmio device must lie below 4 GiB (ACPI Memory32Fixed)");
  for (const auto& r : mem_.regions())
    if (base < r.end() && r.gpa < base + virtio::MmioTransport::kRegionSize)
      return make_error("its registers overlap guest memory");
  uint32_t gsi = QVM_TRY(device_gsi(v, std::nullopt));
  auto dev = built.device;
  UniqueFd irqfd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!irqfd) return Error::from_errno("eventfd", errno);
  if (vm_) QVM_TRY(vm_->add_irqfd(irqfd.get(), gsi));
  int ifd = irqfd.get();
  bool live = vm_.has_value();
  auto transport = std::make_shared<virtio::MmioTransport>(
      mem_, dev,
      [ifd, live] {
        if (!live) return;
        uint64_t one = 1;
        ssize_t n = ::write(ifd, &one, sizeof one);  // the kernel injects the edge (irqfd)
        (void)n;
      },
      virtio::MmioOptions{built.legacy, kQnxPciVendor});
  QVM_TRY(
      mmio_.insert(base, virtio::MmioTransport::kRegionSize, bus::in_log_scope(transport), v.type));
  virtio::MmioTransport* tp = transport.get();
  if (built.attach) QVM_TRY(built.attach([tp](uint16_t q) { tp->handle_notify(q); }));
  keep_.push_back(std::make_shared<UniqueFd>(std::move(irqfd)));
  keep_.push_back(transport);

  QVM_TRY(wire_virtio(
      built, transport->num_queues(),
      [tp, base](uint16_t q) {
        auto m = tp->notify_match(q);
        return NotifyAt{base + m.offset, 4, false, m.value};
      },
      [tp](uint16_t q) { tp->handle_notify(q); }));
  const std::string nt = built.notify_text(transport->num_queues());
  virtio_mmio_.push_back({base, static_cast<uint32_t>(virtio::MmioTransport::kRegionSize), gsi});
  live_status_.emplace_back(device_lines_.size(),
                            [t = transport.get()] { return t->status_report(); });
  device_lines_.push_back(
      strprintf("%-11s mem 0x%llx-0x%llx  gsi %u  virtio-mmio%s (%s, irqfd)%s", v.type.c_str(),
                static_cast<unsigned long long>(base),
                static_cast<unsigned long long>(base + virtio::MmioTransport::kRegionSize - 1), gsi,
                built.legacy ? " v1 (legacy)" : " v2", nt.empty() ? "ioeventfd" : nt.c_str(),
                built.summary.c_str()));
  return {};
}

}  // namespace qvm::machine
