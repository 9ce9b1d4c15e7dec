#include <sys/eventfd.h>

#include <cerrno>

#include "base/log.hpp"
#include "config/values.hpp"
#include "machine/machine_impl.hpp"
#include "vdev/catalog.hpp"

namespace qvm::machine {

void KvmIrqLine::set_level(bool high) {
  if (!vm_) return;
  if (auto s = vm_->set_irq_line(gsi_, high); !s) {
    static RateLimit rl;
    uint64_t supp = 0;
    if (rl.allow(std::chrono::steady_clock::now(), &supp))
      log_error("irq %u: %s", gsi_, s.error().message.c_str());
  }
}

std::unique_ptr<Machine> Machine::build(const config::VmConfig& cfg, const BuildOptions& opts,
                                        BuildError* err) {
  auto m = std::make_unique<MachineImpl>(cfg);
  if (auto s = m->build(opts, err); !s) {
    if (err->message.empty()) {
      err->exit_code = kExitFatalBeforeStart;
      err->message = s.error().message;
    }
    return nullptr;
  }
  return m;
}

MachineImpl::~MachineImpl() {
  // Stop and join vCPU threads before their Vcpu objects go away (normal runs join in run()).
  for (auto& v : vcpus_) v->request_exit();
  for (auto& t : threads_)
    if (t.joinable()) t.join();
  RawTerminal::restore();
}

Status MachineImpl::build(const BuildOptions& opts, BuildError* err) {
  opts_ = opts;
  switch (cfg_.unsupported.reference) {
    case config::UnsupportedAction::kAbort:
      unclaimed_ = UnclaimedAction::kAbort;
      break;
    case config::UnsupportedAction::kFail:
      unclaimed_ = UnclaimedAction::kFail;
      break;
    case config::UnsupportedAction::kIgnore:
      unclaimed_ = UnclaimedAction::kIgnore;
      break;
  }
  auto ev = event::EventLoop::create();
  if (!ev) return ev.error();
  loop_.emplace(std::move(*ev));
  stop_efd_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!stop_efd_) return Error::from_errno("eventfd", errno);
  if (auto s = check_board_ranges(); !s) {
    err->exit_code = kExitConfigError;  // a statically detectable error of the configuration
    err->message = s.error().message;
    return s;
  }
  QVM_TRY(build_memory());
  if (!opts.dryrun) {
    if (auto s = build_kvm(); !s) {
      err->exit_code = kExitFatalBeforeStart;
      err->message = s.error().message;
      return s;
    }
  }
  if (auto s = build_devices(); !s) {
    // The configuration itself was valid (the parser checked it); what failed here is building a
    // device from it (a missing disk, a taken slot): a fatal error before the guest started.
    err->exit_code = kExitFatalBeforeStart;
    err->message = s.error().message;
    return s;
  }
  QVM_TRY(build_boot());
  check_dump_destination();
  if (!opts.dryrun) QVM_TRY(build_gdb());
  return {};
}

// The board's fixed windows (arch/x86/board.hpp) cannot be guest memory: KVM's in-kernel IOAPIC
// and LAPICs would shadow RAM there, and RAM would shadow ECAM (whose MCFG entry would then lie).
Status MachineImpl::check_board_ranges() const {
  namespace x86 = arch::x86;
  struct Window {
    const char* name;
    uint64_t base, size;
  };
  const Window windows[] = {
      {"the PCI ECAM window", x86::kBoard.ecam_base, x86::kBoard.ecam_size},
      {"the IOAPIC", x86::kBoard.ioapic_addr, 0x1000},
      {"the local APIC", x86::kBoard.lapic_addr, 0x1000},
  };
  for (const auto& m : cfg_.memory) {
    for (const Window& w : windows) {
      if (m.start < w.base + w.size && w.base < m.end())
        return make_error(strprintf(
            "%s: %s 0x%llx-0x%llx overlaps %s at 0x%llx-0x%llx (spec §6.2; place guest memory "
            "elsewhere, e.g. above 4 GiB)",
            m.loc.str().c_str(), m.kind == config::MemConfig::Kind::kRom ? "rom" : "ram",
            static_cast<unsigned long long>(m.start), static_cast<unsigned long long>(m.end() - 1),
            w.name, static_cast<unsigned long long>(w.base),
            static_cast<unsigned long long>(w.base + w.size - 1)));
    }
  }
  return {};
}

Status MachineImpl::build_memory() {
  for (const auto& m : cfg_.memory) {
    if (auto s = mem_.add_region(m.start, m.size, m.kind == config::MemConfig::Kind::kRom); !s)
      return make_error(m.loc.str() + ": " + s.error().message);
  }
  return {};
}

Status MachineImpl::build_kvm() {
  kvm_.emplace(QVM_TRY(kvm::KvmSystem::open()));
  vm_.emplace(QVM_TRY(kvm::Vm::create(*kvm_)));
  QVM_TRY(vm_->map_memory(mem_));
  // The in-kernel irqchip (PIC, IOAPIC, LAPICs) keeps interrupt delivery out of user space.
  QVM_TRY(vm_->create_irqchip());
  // spec §4 `set exit-on-halt off`: keep the host CPU in the guest on HLT (lower wake-up latency,
  // a busy host CPU). KVM offers this as KVM_CAP_X86_DISABLE_EXITS; without it HLT stays in KVM.
  // spec §3.14 `unsupported register ignore|abort`: KVM raises #GP for MSRs it does not know
  // (`fail`, the default); for the others it must hand them to qvm.
  if (cfg_.unsupported.reg != config::UnsupportedAction::kFail) {
    if (auto s = vm_->exit_on_unknown_msrs(); !s)
      log_warn("unsupported register %s: %s; unknown MSRs fault (#GP) in the guest",
               cfg_.unsupported.reg == config::UnsupportedAction::kIgnore ? "ignore" : "abort",
               s.error().message.c_str());
  }
  auto eoh = config::parse_bool(cfg_.var("exit-on-halt").value_or("on"));
  if (eoh && !*eoh) {
    if (auto s = vm_->disable_hlt_exits(); !s)
      log_warn("set exit-on-halt off: %s; a halted vCPU still gives up its host CPU",
               s.error().message.c_str());
  }
  return {};
}

Status MachineImpl::add_io(uint64_t base, uint64_t len, std::shared_ptr<bus::BusDevice> dev,
                           const std::string& name) {
  return pio_.insert(base, len, bus::in_log_scope(std::move(dev)), name);
}

Result<uint32_t> MachineImpl::resolve_gsi(const config::IntrRef& r) const {
  const config::VdevConfig* pic = cfg_.find_vdev_by_name(r.pic);
  if (!pic) return make_error("no interrupt controller named '" + r.pic + "'");
  // The vdev layer says where a controller's lines are (vdev/catalog.cpp).
  if (auto base = vdev::pic_gsi_base(*pic)) return *base + r.line;
  return make_error("'" + r.pic + "' is a " + pic->type + ", not an interrupt controller");
}

Result<uint32_t> MachineImpl::device_gsi(const config::VdevConfig& v,
                                         std::optional<uint32_t> fallback) const {
  if (!v.intr.empty()) {
    auto g = resolve_gsi(v.intr[0]);
    if (!g) return make_error(v.intr_loc.str() + ": " + g.error().message);
    return *g;
  }
  if (fallback) return *fallback;
  return make_error(v.loc.str() + ": vdev " + v.type + " needs 'intr'");
}

uint64_t MachineImpl::device_port(const config::VdevConfig& v) const {
  if (v.location) return v.location->addr;
  auto d = config::parse_guest_loc(v.schema->default_loc.value_or("0"));
  return d ? d->addr : 0;
}

std::string MachineImpl::describe() const {
  std::string s = "Machine:\n  memory:\n";
  for (const auto& r : mem_.regions()) {
    s += strprintf("    0x%010llx-0x%010llx %s %llu KiB\n", static_cast<unsigned long long>(r.gpa),
                   static_cast<unsigned long long>(r.end() - 1), r.readonly ? "rom" : "ram",
                   static_cast<unsigned long long>(r.size >> 10));
  }
  s += strprintf("  vcpus: %zu\n  devices:\n", cfg_.cpu_count());
  for (const auto& d : device_lines_) s += "    " + d + "\n";
  for (const auto& b : boot_lines_) s += "  " + b + "\n";
  return s;
}

void MachineImpl::request_stop(int exit_code, const std::string& reason) {
  {
    std::lock_guard lk(stop_.mu);
    if (stop_.stopping) return;
    stop_.exit_code = exit_code;
    stop_.reason = reason;
    stop_.stopping = true;
  }
  if (gate_) gate_->stop();
  for (auto& v : vcpus_) v->request_exit();
  uint64_t one = 1;
  ssize_t n = ::write(stop_efd_.get(), &one, sizeof one);
  (void)n;
}

}  // namespace qvm::machine
