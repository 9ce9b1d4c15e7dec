// What a vdev factory may use (vdev/api/context.hpp), answered by the machine: interrupts on the
// in-kernel irqchip, the port bus, the event loop, host character ends, the stop request, the
// firmware-table descriptions and the device's dryrun/status line.
#include <algorithm>

#include "arch/x86/board.hpp"
#include "machine/machine_impl.hpp"

namespace qvm::machine {
namespace {

class MemslotRegistration final : public vdev::Registration {
 public:
  MemslotRegistration(kvm::Vm& vm, uint32_t slot) : vm_(vm), slot_(slot) {}
  ~MemslotRegistration() override {
    if (auto s = vm_.remove_memslot(slot_); !s)
      log_error("shared memory: %s", s.error().message.c_str());
  }

 private:
  kvm::Vm& vm_;
  uint32_t slot_;
};

class IrqfdRegistration final : public vdev::Registration {
 public:
  IrqfdRegistration(kvm::Vm& vm, int fd, uint32_t gsi) : vm_(vm), fd_(fd), gsi_(gsi) {}
  ~IrqfdRegistration() override { (void)vm_.remove_irqfd(fd_, gsi_); }

 private:
  kvm::Vm& vm_;
  int fd_;
  uint32_t gsi_;
};

class NoRegistration final : public vdev::Registration {};

class MsiRoute final : public vdev::MsiIrqfd {
 public:
  MsiRoute(kvm::Vm* vm, int fd, uint32_t gsi) : vm_(vm), fd_(fd), gsi_(gsi) {}
  ~MsiRoute() override {
    if (!vm_) return;
    (void)vm_->remove_irqfd(fd_, gsi_);
    (void)vm_->remove_msi_route(gsi_);
  }
  Status update(uint64_t addr, uint32_t data) override {
    return vm_ ? vm_->update_msi_route(gsi_, addr, data) : Status{};
  }

 private:
  kvm::Vm* vm_;
  int fd_;
  uint32_t gsi_;
};

}  // namespace

Result<uint64_t> MachineImpl::reserve_window(uint64_t size, uint64_t align,
                                             const std::string& name) {
  if (size == 0 || align == 0 || (align & (align - 1)))
    return make_error("a window needs a size and a power-of-two alignment");
  // Above everything the guest can see: RAM and ROM, `reserve`, registers, earlier windows.
  uint64_t top = 1ull << 32;
  for (const auto& r : mem_.regions()) top = std::max(top, r.end());
  for (const auto& r : cfg_.reserves)
    if (r.kind == config::ReserveConfig::Kind::kLoc && r.loc.space == config::AddrSpace::kMem)
      top = std::max(top, r.loc.addr + r.length);
  for (const auto& r : mmio_.ranges()) top = std::max(top, r.end());
  top = std::max(top, windows_end_);
  const uint64_t base = (top + align - 1) & ~(align - 1);
  // The guest's physical address width bounds it (CPUID 0x80000008; x86-64 allows 52 bits).
  if (base < top || base + size < base || base + size > (1ull << 46))
    return make_error(strprintf("no guest-physical space for the %s window (0x%llx bytes)",
                                name.c_str(), static_cast<unsigned long long>(size)));
  windows_end_ = base + size;
  return base;
}

Result<std::unique_ptr<vdev::Registration>> MachineImpl::map_host_memory(uint64_t gpa,
                                                                         std::span<uint8_t> host) {
  if (!vm_) return std::unique_ptr<vdev::Registration>(std::make_unique<NoRegistration>());
  const uint32_t slot = QVM_TRY(vm_->add_memslot(gpa, host.size(), host.data(), false));
  return std::unique_ptr<vdev::Registration>(std::make_unique<MemslotRegistration>(*vm_, slot));
}

Result<std::unique_ptr<vdev::MsiIrqfd>> MachineImpl::msi_irqfd(int fd, uint64_t addr,
                                                               uint32_t data) {
  if (!vm_) return std::unique_ptr<vdev::MsiIrqfd>(std::make_unique<MsiRoute>(nullptr, fd, 0));
  const uint32_t gsi = QVM_TRY(vm_->add_msi_route(addr, data));
  if (auto s = vm_->add_irqfd(fd, gsi); !s) {
    (void)vm_->remove_msi_route(gsi);
    return std::move(s).error();
  }
  return std::unique_ptr<vdev::MsiIrqfd>(std::make_unique<MsiRoute>(&*vm_, fd, gsi));
}

Result<std::unique_ptr<vdev::Registration>> MachineImpl::irqfd(uint32_t gsi, int fd,
                                                               int resample_fd) {
  if (!vm_) return std::unique_ptr<vdev::Registration>(std::make_unique<NoRegistration>());
  QVM_TRY(vm_->add_irqfd(fd, gsi, resample_fd));
  return std::unique_ptr<vdev::Registration>(std::make_unique<IrqfdRegistration>(*vm_, fd, gsi));
}

vdev::VdevContext::MemorySummary MachineImpl::memory() const {
  MemorySummary m;
  for (const auto& r : mem_.regions()) {
    if (r.readonly) continue;
    (r.gpa >= (1ull << 32) ? m.above_4g : m.below_4g) += r.size;
  }
  m.cpus = static_cast<uint32_t>(cfg_.cpu_count());
  return m;
}

Result<uint32_t> MachineImpl::gsi(const config::VdevConfig& v, std::optional<uint32_t> fallback) {
  return device_gsi(v, fallback);
}

Result<std::vector<uint32_t>> MachineImpl::gsis(const config::VdevConfig& v) {
  std::vector<uint32_t> out;
  for (const auto& r : v.intr) {
    auto g = resolve_gsi(r);
    if (!g) return make_error(v.intr_loc.str() + ": " + g.error().message);
    out.push_back(*g);
  }
  return out;
}

Result<vdev::Interrupt> MachineImpl::interrupt(const config::VdevConfig& v,
                                               std::optional<uint32_t> fallback) {
  const uint32_t g = QVM_TRY(device_gsi(v, fallback));
  return vdev::Interrupt{std::make_unique<KvmIrqLine>(vm_ ? &*vm_ : nullptr, g), g};
}

Status MachineImpl::add_mmio(uint64_t base, uint64_t len, std::shared_ptr<bus::BusDevice> dev,
                             const std::string& name) {
  if (len == 0 || base + len < base) return make_error("an empty or wrapping register range");
  for (const auto& r : mem_.regions())
    if (base < r.end() && r.gpa < base + len)
      return make_error(strprintf("registers at 0x%llx+0x%llx overlap guest memory",
                                  static_cast<unsigned long long>(base),
                                  static_cast<unsigned long long>(len)));
  for (const auto& r : cfg_.reserves)
    if (r.kind == config::ReserveConfig::Kind::kLoc && r.loc.space == config::AddrSpace::kMem &&
        base < r.loc.addr + r.length && r.loc.addr < base + len)
      return make_error(strprintf("registers at 0x%llx+0x%llx overlap a `reserve`",
                                  static_cast<unsigned long long>(base),
                                  static_cast<unsigned long long>(len)));
  // KVM's in-kernel IOAPIC and LAPICs take their pages before any exit reaches the bus.
  const std::pair<uint64_t, uint64_t> in_kernel[] = {{arch::x86::kBoard.ioapic_addr, 0x1000},
                                                     {arch::x86::kBoard.lapic_addr, 0x100000}};
  for (const auto& [at, size] : in_kernel)
    if (base < at + size && at < base + len)
      return make_error(strprintf("registers at 0x%llx+0x%llx overlap the in-kernel %s",
                                  static_cast<unsigned long long>(base),
                                  static_cast<unsigned long long>(len),
                                  at == arch::x86::kBoard.ioapic_addr ? "IOAPIC" : "LAPIC"));
  return mmio_.insert(base, len, bus::in_log_scope(std::move(dev)), name);
}

Status MachineImpl::signal_msi(uint64_t addr, uint32_t data) {
  if (!vm_) return {};
  return vm_->signal_msi(addr, data);
}

uint64_t MachineImpl::ioapic_address() const {
  return arch::x86::kBoard.ioapic_addr;
}

void MachineImpl::hpet_legacy(bool on) {
  if (!vm_ || !has_pit_) return;
  if (auto s = vm_->set_pit_hpet_legacy(on); !s) {
    static RateLimit rl(1.0, 5.0);  // the guest can toggle the mode in a loop
    uint64_t supp = 0;
    if (rl.allow(std::chrono::steady_clock::now(), &supp))
      log_warn("HPET legacy replacement: the PIT's IRQ0 stays on: %s (%llu similar suppressed)",
               s.error().message.c_str(), static_cast<unsigned long long>(supp));
  }
}

Status MachineImpl::in_kernel_pit(uint32_t pin) {
  pit_pin_ = pin;
  has_pit_ = true;
  if (vm_) QVM_TRY(vm_->create_pit());
  return {};
}

Result<vdev::CharEndpoints> MachineImpl::open_char(const std::vector<std::string>& hostdevs) {
  return vdev::open_char_endpoints(hostdevs, opts_.dryrun);
}

void MachineImpl::add_fdt_device(fdt::FdtDevice d, bool console) {
  if (console && !fdt_stdout_)
    fdt_stdout_ =
        strprintf("/%s@%llx", d.node_name.c_str(), static_cast<unsigned long long>(d.reg.base));
  fdt_devices_.push_back(std::move(d));
}

}  // namespace qvm::machine
