// virtio vdevs on PCI (spec §5: a vdev that can be PCI is PCI unless `loc`/`intr` say otherwise;
// virtio 1.2 §4.1 modern transport, or with the `legacy` option the virtio 0.9.5 legacy transport
// of §4.1.4.8). qvm is the firmware here: it assigns each function a slot on bus 0, its memory
// BARs in the 32-bit window 0xc0000000-0xfebfffff and its I/O BARs in the port window
// 0xc000-0xffff (skipping `reserve`d ranges and taken ports), so guests find working BARs without
// a BIOS. Hot paths stay in the kernel: queue notifications are KVM ioeventfds on the notify area
// (legacy: PIO ioeventfds on the shared notify port, one per queue by datamatch), MSI-X messages
// go straight to KVM_SIGNAL_MSI from the thread that completes the request.
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <mutex>

#include "arch/x86/board.hpp"
#include "base/log.hpp"
#include "base/qnx_ids.hpp"
#include "machine/machine_impl.hpp"
#include "pci/pci_root.hpp"
#include "virtio/transport/pci.hpp"

namespace qvm::machine {

namespace {
using arch::x86::kBoard;
constexpr uint64_t kMmioWindowEnd = kBoard.pci_mmio_end;
constexpr uint32_t kFirstPciGsi = kBoard.pci_intx_gsi_base;  // IOAPIC pins 16-23, level
constexpr uint64_t kIoWindowStart = kBoard.pci_io_base;
constexpr uint64_t kIoWindowEnd = kBoard.pci_io_end;

// A naturally aligned free port range of `size` bytes in the I/O window: not `reserve loc io:`
// and not on the port bus already.
Result<uint64_t> alloc_io(const config::VmConfig& cfg, const bus::Bus& pio, uint64_t size) {
  for (uint64_t a = kIoWindowStart; a + size <= kIoWindowEnd; a += size) {
    bool clash = false;
    for (const auto& r : pio.ranges())
      if (a < r.base + r.len && r.base < a + size) clash = true;
    for (const auto& r : cfg.reserves)
      if (r.kind == config::ReserveConfig::Kind::kLoc && r.loc.space == config::AddrSpace::kIo &&
          a < r.loc.addr + r.length && r.loc.addr < a + size)
        clash = true;
    if (!clash) return a;
  }
  return make_error("the PCI I/O window 0xc000-0xffff is full");
}
}  // namespace

Result<uint64_t> MachineImpl::alloc_mmio(uint64_t size) {
  for (int tries = 0; tries < 64; ++tries) {
    uint64_t a = (mmio_next_ + size - 1) & ~(size - 1);  // natural alignment (PCI 3.0 §6.2.5.1)
    if (a + size > kMmioWindowEnd) break;
    bool clash = false;
    for (const auto& r : cfg_.reserves) {
      if (r.kind != config::ReserveConfig::Kind::kLoc || r.loc.space != config::AddrSpace::kMem)
        continue;
      if (a < r.loc.addr + r.length && r.loc.addr < a + size) {
        mmio_next_ = r.loc.addr + r.length;
        clash = true;
      }
    }
    for (const auto& m : mem_.regions())
      if (a < m.end() && m.gpa < a + size) {
        mmio_next_ = m.end();
        clash = true;
      }
    if (clash) continue;
    mmio_next_ = a + size;
    return a;
  }
  return make_error("the PCI MMIO window 0xc0000000-0xfebfffff is full");
}

Result<uint8_t> MachineImpl::pci_slot(const config::VdevConfig& v) {
  if (v.location && v.location->space == config::AddrSpace::kPci) {
    const auto& l = *v.location;
    if (l.bus != 0) return make_error("only PCI bus 0 exists");
    if (l.func != 0) return make_error("a virtio device is function 0 of its slot");
    if (l.dev == 0) return make_error("00:00.0 is the host bridge");
    if (pci_->occupied(l.dev, 0))
      return make_error(strprintf("PCI slot 00:%02x.0 is taken", l.dev));
    return l.dev;
  }
  for (uint8_t d = 1; d < 32; ++d) {
    if (pci_->occupied(d, 0)) continue;
    bool reserved = false;
    for (const auto& r : cfg_.reserves)
      if (r.kind == config::ReserveConfig::Kind::kLoc && r.loc.space == config::AddrSpace::kPci &&
          r.loc.bus == 0 && r.loc.dev == d)
        reserved = true;
    if (!reserved) return d;
  }
  return make_error("no free PCI slot on bus 0");
}

Status MachineImpl::add_virtio_pci(const config::VdevConfig& v, vdev::VirtioDeviceBuild built) {
  uint8_t slot = QVM_TRY(pci_slot(v));
  const bool legacy = v.has("legacy");
  if (legacy && !virtio::PciTransport::legacy_device_id(built.device->device_type()))
    return make_error(v.type + ": this device type has no legacy (transitional) PCI device ID");
  uint32_t gsi =
      kFirstPciGsi + (slot % 8u);  // INTA# of this slot (the Interrupt Line register says so)
  kvm::Vm* vm = vm_ ? &*vm_ : nullptr;
  auto transport = std::make_shared<virtio::PciTransport>(
      mem_, built.device,
      [vm](uint64_t addr, uint32_t data) {
        if (vm) (void)vm->signal_msi(addr, data);
      },
      [vm, gsi](bool level) {
        if (vm) (void)vm->set_irq_line(gsi, level);
      },
      virtio::PciOptions{.subsystem_vendor = kQnxPciVendor, .class_code = {}, .legacy = legacy});
  transport->config().write(0x3c, 1, gsi);  // Interrupt Line: as firmware would fill it in
  std::string bars;
  std::vector<std::pair<uint8_t, uint64_t>> placed;
  std::vector<uint8_t> io_bars;
  for (const pci::BarInfo& b : transport->bars()) {
    uint64_t addr = b.io ? QVM_TRY(alloc_io(cfg_, pio_, b.size)) : QVM_TRY(alloc_mmio(b.size));
    transport->config().set_bar_address(b.index, addr);
    QVM_TRY((b.io ? pio_ : mmio_)
                .insert(addr, b.size, transport->bar_device(b.index),
                        v.type + " BAR" + std::to_string(b.index)));
    placed.emplace_back(b.index, addr);
    if (b.io) io_bars.push_back(b.index);
    bars +=
        strprintf(" BAR%u %s0x%llx+0x%llx", b.index, b.io ? "io:" : "",
                  static_cast<unsigned long long>(addr), static_cast<unsigned long long>(b.size));
  }
  // Memory (and, with an I/O BAR, I/O) decoding on, as firmware leaves a device it configured
  // (the guest may still turn it off).
  transport->config().write(0x04, 2, io_bars.empty() ? 0x0006 : 0x0007);
  if (!pci_->add(slot, 0, transport))
    return make_error(strprintf("PCI slot 00:%02x.0 is taken", slot));
  // Firmware and OSes may reassign BARs (SeaBIOS always does). The hook runs inside the config
  // access, so the bus move and the ioeventfd re-registration are deferred until it returns.
  struct BarState {
    std::mutex mu;
    std::vector<std::pair<uint8_t, uint64_t>> at;  // BAR index -> where it decodes
    std::vector<uint8_t> io_bars;                  // BARs on the port bus
    struct Notify {
      int fd;
      uint8_t bar;
      uint64_t offset;
      uint32_t len;
      std::optional<uint64_t> datamatch;
    };
    std::vector<Notify> notifies;
    // A guest can ask for failing moves in a loop: their warnings are rate-limited per device.
    RateLimit warn_rl{2.0, 10.0};
  };
  auto state = std::make_shared<BarState>();
  state->at = placed;
  state->io_bars = io_bars;
  transport->set_bar_hook([this, state, name = v.type](uint8_t bar, std::optional<uint64_t> addr) {
    if (!addr) return;  // decoding turned off: the range stays; accesses read all ones meanwhile
    uint64_t to = *addr;
    defer([this, state, name, bar, to] {
      std::lock_guard lk(state->mu);
      const bool io =
          std::find(state->io_bars.begin(), state->io_bars.end(), bar) != state->io_bars.end();
      for (auto& [index, at] : state->at) {
        if (index != bar || at == to) continue;
        if (auto s = (io ? pio_ : mmio_).move(at, to); !s) {
          uint64_t supp = 0;
          if (state->warn_rl.allow(std::chrono::steady_clock::now(), &supp))
            log_warn("%s: cannot move BAR%u to 0x%llx: %s (%llu similar suppressed)", name.c_str(),
                     bar, static_cast<unsigned long long>(to), s.error().message.c_str(),
                     static_cast<unsigned long long>(supp));
          return;
        }
        for (const auto& n : state->notifies) {
          if (n.bar != bar || !vm_) continue;
          (void)vm_->remove_ioeventfd(n.fd, at + n.offset, n.len, io, n.datamatch);
          uint64_t supp = 0;
          if (auto s = vm_->add_ioeventfd(n.fd, to + n.offset, n.len, io, n.datamatch);
              !s && state->warn_rl.allow(std::chrono::steady_clock::now(), &supp))
            log_warn("%s: %s (%llu similar suppressed)", name.c_str(), s.error().message.c_str(),
                     static_cast<unsigned long long>(supp));
        }
        log_debug("%s: BAR%u moved 0x%llx -> 0x%llx", name.c_str(), bar,
                  static_cast<unsigned long long>(at), static_cast<unsigned long long>(to));
        at = to;
      }
    });
  });
  virtio::PciTransport* tp = transport.get();
  if (built.attach) QVM_TRY(built.attach([tp](uint16_t q) { tp->handle_notify(q); }));
  keep_.push_back(transport);
  auto wired = QVM_TRY(wire_virtio(
      built, transport->num_queues(),
      [tp, &placed](uint16_t q) {
        auto m = tp->notify_match(q);
        uint64_t bar_addr = 0;
        for (const auto& [index, at] : placed)
          if (index == m.bar) bar_addr = at;
        return NotifyAt{bar_addr + m.offset, m.len, m.io, m.datamatch};
      },
      [tp](uint16_t q) { tp->handle_notify(q); }));
  {
    std::lock_guard lk(state->mu);
    for (const auto& w : wired) {
      auto m = tp->notify_match(w.queue);
      state->notifies.push_back({w.fd, m.bar, m.offset, m.len, m.datamatch});
    }
  }
  const std::string nt = built.notify_text(transport->num_queues());
  live_status_.emplace_back(device_lines_.size(),
                            [t = transport.get()] { return t->status_report(); });
  // The notification path as on MMIO (virtio_devices.cpp): "ioeventfd", or which ones exit.
  device_lines_.push_back(strprintf("%-11s pci 00:%02x.0%s%s  MSI-X, INTA# gsi %u (%s)%s",
                                    v.type.c_str(), slot, legacy ? " legacy" : "", bars.c_str(),
                                    gsi, nt.empty() ? "ioeventfd" : nt.c_str(),
                                    built.summary.c_str()));
  return {};
}

}  // namespace qvm::machine
