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

Result<uint8_t> MachineImpl::pci_slot(const config::VdevConfig& v, bool intx) {
  // `reserve intr N` (spec §3.9) keeps automatic assignment off GSI N: a slot whose INTA# the
  // DSDT _PRT routes there (16 + slot % 8) is not picked for a function that has an INTA#.
  auto intx_reserved = [&](uint8_t d) -> const config::ReserveConfig* {
    if (!intx) return nullptr;
    for (const auto& r : cfg_.reserves)
      if (r.kind == config::ReserveConfig::Kind::kIntr && r.intr == kFirstPciGsi + d % 8u)
        return &r;
    return nullptr;
  };
  if (v.location && v.location->space == config::AddrSpace::kPci) {
    const auto& l = *v.location;
    if (l.bus != 0) return make_error("only PCI bus 0 exists");
    if (l.func != 0) return make_error("a vdev is function 0 of its slot");
    if (l.dev == 0) return make_error("00:00.0 is the host bridge");
    if (pci_->occupied(l.dev, 0))
      return make_error(strprintf("PCI slot 00:%02x.0 is taken", l.dev));
    if (const auto* r = intx_reserved(l.dev))
      return make_error(
          strprintf("slot 00:%02x.0's INTA# is GSI %u, which `reserve intr %u` at %s "
                    "keeps free",
                    l.dev, r->intr, r->intr, r->where.str().c_str()));
    return l.dev;
  }
  for (uint8_t d = 1; d < 32; ++d) {
    if (pci_->occupied(d, 0) || intx_reserved(d)) continue;
    bool reserved = false;
    for (const auto& r : cfg_.reserves)
      if (r.kind == config::ReserveConfig::Kind::kLoc && r.loc.space == config::AddrSpace::kPci &&
          r.loc.bus == 0 && r.loc.dev == d)
        reserved = true;
    if (!reserved) return d;
  }
  return make_error(intx ? "no free PCI slot on bus 0 whose INTA# line is not reserved"
                         : "no free PCI slot on bus 0");
}

namespace {

// The machine's view of a placed function: configuration accesses go to the device's function;
// after each write the BARs are checked, so every PCI device gets BAR moves the same way (PCI 3.0
// §6.2.2: a BAR decodes while Command.Memory, or Command.IO for an I/O BAR, is set).
class PlacedFunction final : public pci::PciFunction {
 public:
  using Hook = std::function<void(uint8_t index, std::optional<uint64_t> addr)>;
  PlacedFunction(std::shared_ptr<pci::PciFunction> inner, Hook hook)
      : inner_(std::move(inner)), hook_(std::move(hook)) {
    for (const auto& b : inner_->config().bars()) decoded_.emplace_back(b.index, b.addr);
  }
  pci::ConfigSpace& config() override { return inner_->config(); }
  uint32_t config_read(uint16_t offset, unsigned size) override {
    return inner_->config_read(offset, size);
  }
  void config_written(uint16_t offset, unsigned size) override {
    inner_->config_written(offset, size);
    if (offset < 0x28 && offset + size > 0x04) check_bars();  // Command or a BAR
  }

 private:
  void check_bars() {
    const pci::ConfigSpace& c = inner_->config();
    for (auto& [index, last] : decoded_) {
      auto b = c.bar(index);
      if (!b) continue;
      std::optional<uint64_t> now;
      if (b->io ? c.io_enabled() : c.memory_enabled()) now = b->addr;
      if (now == last) continue;
      last = now;
      hook_(index, now);
    }
  }
  std::shared_ptr<pci::PciFunction> inner_;
  Hook hook_;
  std::vector<std::pair<uint8_t, std::optional<uint64_t>>> decoded_;
};

}  // namespace

Result<vdev::PciPlacement> MachineImpl::add_pci(const config::VdevConfig& v,
                                                vdev::PciFunctionBuild build) {
  pci::ConfigSpace& cfg = build.function->config();
  vdev::PciPlacement out;
  out.slot = QVM_TRY(pci_slot(v, cfg.raw8(0x3d) != 0));
  out.intx_gsi = kFirstPciGsi + (out.slot % 8u);  // INTA# of this slot (the DSDT _PRT says so)
  if (cfg.raw8(0x3d) != 0) cfg.write(0x3c, 1, out.intx_gsi);  // as firmware fills it in
  out.text = strprintf("pci 00:%02x.0", out.slot);
  std::vector<uint8_t> io_bars;
  for (const pci::BarInfo& b : cfg.bars()) {
    auto dev = build.bar_device(b.index);
    if (!dev) return make_error(strprintf("%s: BAR%u has no device", v.type.c_str(), b.index));
    uint64_t addr = b.io ? QVM_TRY(alloc_io(cfg_, pio_, b.size)) : QVM_TRY(alloc_mmio(b.size));
    cfg.set_bar_address(b.index, addr);
    QVM_TRY(
        (b.io ? pio_ : mmio_).insert(addr, b.size, dev, v.type + " BAR" + std::to_string(b.index)));
    out.bars.emplace_back(b.index, addr);
    if (b.io) io_bars.push_back(b.index);
    out.text +=
        strprintf(" BAR%u %s0x%llx+0x%llx", b.index, b.io ? "io:" : "",
                  static_cast<unsigned long long>(addr), static_cast<unsigned long long>(b.size));
  }
  // Memory (and, with an I/O BAR, I/O) decoding on, as firmware leaves a device it configured
  // (the guest may still turn it off).
  const uint32_t command = io_bars.empty() ? 0x0006 : 0x0007;
  // Moves requested from inside a configuration access run after it returns (defer): the bus
  // lock is held shared during the access.
  struct BarState {
    std::mutex mu;
    std::vector<std::pair<uint8_t, uint64_t>> at;  // BAR index -> where its bus range is
    std::vector<uint8_t> io_bars;
    // A guest can ask for failing moves in a loop: their warnings are rate-limited per device.
    RateLimit warn_rl{2.0, 10.0};
  };
  auto state = std::make_shared<BarState>();
  state->at = out.bars;
  state->io_bars = io_bars;
  auto moved = std::move(build.bar_moved);
  auto placed = std::make_shared<PlacedFunction>(
      build.function,
      [this, state, name = v.type, moved](uint8_t bar, std::optional<uint64_t> addr) {
        if (!addr) return;  // decoding off: the range stays; accesses read all ones meanwhile
        const uint64_t to = *addr;
        defer([this, state, name, moved, bar, to] {
          std::lock_guard lk(state->mu);
          const bool io =
              std::find(state->io_bars.begin(), state->io_bars.end(), bar) != state->io_bars.end();
          for (auto& [index, at] : state->at) {
            if (index != bar || at == to) continue;
            if (auto s = (io ? pio_ : mmio_).move(at, to); !s) {
              uint64_t supp = 0;
              if (state->warn_rl.allow(std::chrono::steady_clock::now(), &supp))
                log_warn("%s: cannot move BAR%u to 0x%llx: %s (%llu similar suppressed)",
                         name.c_str(), bar, static_cast<unsigned long long>(to),
                         s.error().message.c_str(), static_cast<unsigned long long>(supp));
              return;
            }
            log_debug("%s: BAR%u moved 0x%llx -> 0x%llx", name.c_str(), bar,
                      static_cast<unsigned long long>(at), static_cast<unsigned long long>(to));
            const uint64_t from = at;
            at = to;
            if (moved) moved(bar, from, to);
          }
        });
      });
  cfg.write(0x04, 2, command);
  placed->config_written(0x04, 2);  // the function sees the command its firmware set
  if (!pci_->add(out.slot, 0, placed))
    return make_error(strprintf("PCI slot 00:%02x.0 is taken", out.slot));
  keep_.push_back(placed);
  return out;
}

std::unique_ptr<vdev::IrqLine> MachineImpl::gsi_line(uint32_t gsi) {
  return std::make_unique<KvmIrqLine>(vm_ ? &*vm_ : nullptr, gsi);
}

Status MachineImpl::add_virtio_pci(const config::VdevConfig& v, vdev::VirtioDeviceBuild built) {
  const bool legacy = built.legacy;
  if (legacy && !virtio::PciTransport::legacy_device_id(built.device->device_type()))
    return make_error(v.type + ": this device type has no legacy (transitional) PCI device ID");
  kvm::Vm* vm = vm_ ? &*vm_ : nullptr;
  // INTA#'s GSI is known once the slot is: the transport asks through this cell.
  auto intx_gsi = std::make_shared<std::atomic<uint32_t>>(0);
  auto transport = std::make_shared<virtio::PciTransport>(
      mem_, built.device,
      [vm](uint64_t addr, uint32_t data) {
        if (vm) (void)vm->signal_msi(addr, data);
      },
      [vm, intx_gsi](bool level) {
        if (vm) (void)vm->set_irq_line(intx_gsi->load(), level);
      },
      virtio::PciOptions{.subsystem_vendor = kQnxPciVendor, .class_code = {}, .legacy = legacy});
  // The queues' notify ioeventfds follow their BAR when the guest moves it.
  struct Notifies {
    std::mutex mu;
    std::vector<WiredNotify> wired;
  };
  auto notifies = std::make_shared<Notifies>();
  virtio::PciTransport* tp = transport.get();
  vdev::PciFunctionBuild pb;
  pb.function = transport;
  pb.bar_device = [tp](uint8_t index) { return tp->bar_device(index); };
  pb.bar_moved = [this, tp, notifies, name = v.type](uint8_t bar, uint64_t from, uint64_t to) {
    if (!vm_) return;
    std::lock_guard lk(notifies->mu);
    for (const auto& w : notifies->wired) {
      auto m = tp->notify_match(w.queue);
      if (m.bar != bar) continue;
      (void)vm_->remove_ioeventfd(w.fd, from + m.offset, m.len, m.io, m.datamatch);
      if (auto s = vm_->add_ioeventfd(w.fd, to + m.offset, m.len, m.io, m.datamatch); !s)
        log_warn("%s: %s", name.c_str(), s.error().message.c_str());  // once per guest move
    }
  };
  const vdev::PciPlacement at = QVM_TRY(add_pci(v, std::move(pb)));
  intx_gsi->store(at.intx_gsi);
  if (built.attach) QVM_TRY(built.attach([tp](uint16_t q) { tp->handle_notify(q); }));
  keep_.push_back(transport);
  auto wired = QVM_TRY(wire_virtio(
      built, transport->num_queues(),
      [tp, &at](uint16_t q) {
        auto m = tp->notify_match(q);
        return NotifyAt{at.bar_address(m.bar) + m.offset, m.len, m.io, m.datamatch};
      },
      [tp](uint16_t q) { tp->handle_notify(q); }));
  {
    std::lock_guard lk(notifies->mu);
    notifies->wired = std::move(wired);
  }
  const std::string nt = built.notify_text(transport->num_queues());
  live_status_.emplace_back(device_lines_.size(),
                            [t = transport.get()] { return t->status_report(); });
  // The notification path as on MMIO (virtio_devices.cpp): "ioeventfd", or which ones exit.
  device_lines_.push_back(strprintf("%-11s %s%s  MSI-X, INTA# gsi %u (%s)%s", v.type.c_str(),
                                    at.text.c_str(), legacy ? " legacy" : "", at.intx_gsi,
                                    nt.empty() ? "ioeventfd" : nt.c_str(), built.summary.c_str()));
  return {};
}

}  // namespace qvm::machine
