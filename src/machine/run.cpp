// Running the VM: one thread per vCPU, the main thread's event loop for host I/O, timers and
// signals (spec §8.1), and the orderly stop that yields the exit code (spec §8.3).
#include <linux/kvm.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>

#include "base/log.hpp"
#include "machine/machine_impl.hpp"
#include "machine/x86_cpu.hpp"
#include "vdev/platform/acpi_pm.hpp"

namespace qvm::machine {
namespace {

// Breaks a vCPU thread out of KVM_RUN; the handler does nothing, the EINTR is the point.
const int kKickSignal = SIGRTMIN + 1;
void kick_handler(int) {}

}  // namespace

// spec §3.2 `cpu runmask` / `sched`: host CPUs and scheduling of this vCPU's thread.
static Status apply_cpu_placement(const config::CpuConfig& c) {
  if (!c.runmask.empty()) {
    cpu_set_t set;
    CPU_ZERO(&set);
    for (uint32_t n : c.runmask) CPU_SET(n, &set);
    if (int e = pthread_setaffinity_np(pthread_self(), sizeof set, &set); e != 0)
      return Error::from_errno("cpu runmask", e);
  }
  if (c.sched) {
    int policy = c.sched->policy == config::SchedPolicy::kFifo         ? SCHED_FIFO
                 : c.sched->policy == config::SchedPolicy::kRoundRobin ? SCHED_RR
                                                                       : SCHED_OTHER;
    sched_param p{};
    p.sched_priority = static_cast<int>(c.sched->priority);
    if (int e = pthread_setschedparam(pthread_self(), policy, &p); e != 0)
      return Error::from_errno(
          "cpu sched (real-time priorities need CAP_SYS_NICE or an RLIMIT_RTPRIO)", e);
  }
  return {};
}

namespace {
thread_local bool tl_in_exit = false;  // this vCPU thread is handling an exit (a bus access)
}  // namespace

void MachineImpl::vcpu_thread(size_t index) {
  kvm::Vcpu& vcpu = *vcpus_[index];
  VcpuStats& st = *stats_[index];
  if (index < cfg_.cpus.size()) {
    if (auto s = apply_cpu_placement(cfg_.cpus[index]); !s) {
      request_stop(kExitFatalBeforeStart,
                   strprintf("vCPU %zu: %s (at %s)", index, s.error().message.c_str(),
                             cfg_.cpus[index].loc.str().c_str()));
      gate_->exited(index);  // a pause (a dump) must not wait for this thread
      return;
    }
  }
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, kKickSignal);
  pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
  st.state = 1;
  RateLimit unclaimed_log(2.0, 10.0);
  while (!stop_.stopping) {
    if (!gate_->checkpoint(index)) break;
    auto ex = vcpu.run();
    if (!ex) {
      request_stop(kExitFatalAfterStart,
                   "vCPU " + std::to_string(index) + ": " + ex.error().message);
      break;
    }
    ++st.exits;
    if (has_deferred_.load(std::memory_order_acquire)) run_deferred();
    const kvm::VcpuExit& e = *ex;
    const auto* io = std::get_if<kvm::IoExit>(&e);
    const auto* mm = std::get_if<kvm::MmioExit>(&e);
    if (io || mm) {
      ++(io ? st.io : st.mmio);
      tl_in_exit = true;
      DispatchResult r =
          io ? dispatch_io(*io, pio_, unclaimed_) : dispatch_mmio(*mm, mmio_, unclaimed_);
      tl_in_exit = false;
      // A BAR the guest just moved is followed before anything else touches the bus.
      if (has_deferred_.load(std::memory_order_acquire)) run_deferred();
      if (r.unclaimed) {
        ++st.unclaimed;
        uint64_t supp = 0;
        if (unclaimed_log.allow(std::chrono::steady_clock::now(), &supp))
          log_debug("vCPU %zu: %s hits no device (%llu similar suppressed)", index,
                    kvm::describe(e).c_str(), static_cast<unsigned long long>(supp));
        if (r.abort) request_stop(kExitUnsupported, "unsupported reference: " + kvm::describe(e));
      }
    } else if (const auto* msr = std::get_if<kvm::MsrExit>(&e)) {
      // Only MSRs KVM does not know get here (exit_on_unknown_msrs): `unsupported register`.
      ++st.other;
      const auto action = cfg_.unsupported.reg;
      *msr->error = action == config::UnsupportedAction::kIgnore ? 0 : 1;  // 1: #GP
      if (!msr->write && action == config::UnsupportedAction::kIgnore) *msr->value = 0;
      uint64_t supp = 0;
      if (unclaimed_log.allow(std::chrono::steady_clock::now(), &supp))
        log_info("vCPU %zu: %s: unknown MSR, %s (unsupported register; %llu similar suppressed)",
                 index, kvm::describe(e).c_str(),
                 action == config::UnsupportedAction::kIgnore
                     ? (msr->write ? "write dropped" : "read as 0")
                     : "the VM stops",
                 static_cast<unsigned long long>(supp));
      if (action == config::UnsupportedAction::kAbort)
        request_stop(kExitUnsupported, "unsupported register: " + kvm::describe(e));
    } else if (const auto* de = std::get_if<kvm::DebugExit>(&e)) {
      // Only while a GDB client has debugging enabled on this vCPU.
      ++st.other;
      if (gdb_) gdb_->on_debug_exit(index, *de);
    } else if (std::holds_alternative<kvm::InterruptedExit>(e)) {
      vcpu.clear_exit_request();
    } else if (std::holds_alternative<kvm::HltExit>(e)) {
      ++st.other;  // only without an in-kernel LAPIC; nothing to wait for here
    } else if (std::holds_alternative<kvm::ShutdownExit>(e)) {
      // A guest that triple-faults usually did not mean to: say where it was (once per run,
      // since the VM stops here).
      log_warn("vCPU %zu triple fault: %s", index, describe_cpu_state(vcpu).c_str());
      request_stop(kExitGuestStop,
                   "guest reset (triple fault on vCPU " + std::to_string(index) + ")");
    } else if (const auto* se = std::get_if<kvm::SystemEventExit>(&e)) {
      request_stop(kExitGuestStop,
                   se->type == KVM_SYSTEM_EVENT_RESET ? "guest reset" : "guest powered off");
    } else if (const auto* ie = std::get_if<kvm::InternalErrorExit>(&e)) {
      auto regs = vcpu.regs();
      std::string where =
          regs ? strprintf(" at rip 0x%llx", static_cast<unsigned long long>(regs->rip)) : "";
      bool emulation = ie->suberror == KVM_INTERNAL_ERROR_EMULATION;
      // spec §3.14 `unsupported instruction`: an instruction KVM's emulator cannot run (KVM
      // reports those of guest ring 0; ring 3 gets #UD from KVM itself). `fail` (the default)
      // and `ignore` raise #UD in the guest (`ignore` cannot step over an instruction qvm does
      // not decode: the configuration warns), `abort` ends qvm with exit 5.
      if (emulation && cfg_.unsupported.instruction != config::UnsupportedAction::kAbort) {
        ++st.other;
        uint64_t supp = 0;
        if (unclaimed_log.allow(std::chrono::steady_clock::now(), &supp))
          log_info(
              "vCPU %zu: instruction KVM cannot emulate%s: #UD raised in the guest "
              "(unsupported instruction; %llu similar suppressed)",
              index, where.c_str(), static_cast<unsigned long long>(supp));
        if (auto s = vcpu.inject_exception(6); s.ok()) continue;
        request_stop(kExitFatalAfterStart, "vCPU " + std::to_string(index) + ": " +
                                               kvm::describe(e) + where + ": cannot raise #UD");
        continue;
      }
      request_stop(
          emulation ? kExitUnsupported : kExitFatalAfterStart,
          "vCPU " + std::to_string(index) + ": " + kvm::describe(e) + where +
              (emulation ? " (KVM's instruction emulator cannot run this instruction: unsupported "
                           "instruction abort; on PVM hosts guest ring 0 is emulated, see "
                           "docs/testing.md)"
                         : ""));
    } else {
      ++st.other;
      request_stop(kExitFatalAfterStart, "vCPU " + std::to_string(index) + ": " + kvm::describe(e));
    }
  }
  st.state = 2;
  gate_->exited(index);
}

void MachineImpl::kick_vcpu(size_t index) {
  vcpus_[index]->request_exit();
  // Threads exist only while run() runs them; before that, immediate_exit alone suffices.
  if (index < threads_.size()) pthread_kill(threads_[index].native_handle(), kKickSignal);
}

void MachineImpl::defer(std::function<void()> fn) {
  fn = in_log_scope(std::move(fn));
  std::lock_guard lk(deferred_mu_);
  deferred_.push_back(std::move(fn));
  has_deferred_.store(true, std::memory_order_release);
}

void MachineImpl::after_access(std::function<void()> fn) {
  if (tl_in_exit)
    defer(std::move(fn));
  else
    fn();
}

void MachineImpl::run_deferred() {
  std::vector<std::function<void()>> todo;
  {
    std::lock_guard lk(deferred_mu_);
    todo.swap(deferred_);
    has_deferred_.store(false, std::memory_order_release);
  }
  for (auto& f : todo) f();
}

void MachineImpl::handle_signal(int sig) {
  switch (sig) {
    case SIGTERM:
    case SIGINT:
    case SIGHUP:
      // spec §8.1: the power button; the guest decides what to do. SIGHUP (the terminal or
      // session went away) asks the same orderly stop.
      log_info("%s: pressing the ACPI power button", sig == SIGTERM  ? "SIGTERM"
                                                     : sig == SIGINT ? "SIGINT"
                                                                     : "SIGHUP");
      if (pm_) {
        std::lock_guard lk(*pm_mu_);
        pm_->press_power_button();
      }
      break;
    case SIGQUIT:
      request_stop(kExitPowerCut, "SIGQUIT: power cut");
      break;
    case SIGUSR1:
      log_info("%s", status_report().c_str());
      break;
    case SIGUSR2:
      // spec §8.1: a guest dump (dump.cpp), which needs `dump`.
      if (!cfg_.dump) {
        log_warn("SIGUSR2: no 'dump' configured; no guest dump written");
      } else if (auto s = write_dump("SIGUSR2"); !s) {
        log_error("SIGUSR2: no guest dump written: %s", s.error().message.c_str());
      }
      break;
    case SIGALRM:
      log_info("SIGALRM: ignored (qvm sets no alarms)");
      break;
    default:
      break;
  }
}

std::string MachineImpl::status_report() const {
  std::string s = "status of VM '" + cfg_.system_name() + "':";
  static const char* kStates[] = {"created", "running", "stopped"};
  for (size_t i = 0; i < stats_.size(); ++i) {
    const auto& st = *stats_[i];
    s += strprintf("\n  vCPU %zu %s: %llu exits (io %llu, mmio %llu, unclaimed %llu, other %llu)",
                   i, kStates[st.state.load()], static_cast<unsigned long long>(st.exits.load()),
                   static_cast<unsigned long long>(st.io.load()),
                   static_cast<unsigned long long>(st.mmio.load()),
                   static_cast<unsigned long long>(st.unclaimed.load()),
                   static_cast<unsigned long long>(st.other.load()));
  }
  s += "\n  " + dump_status();
  for (size_t i = 0; i < device_lines_.size(); ++i) {
    s += "\n  " + device_lines_[i];
    for (const auto& [index, live] : live_status_)
      if (index == i)
        for (const std::string& l : live()) s += "\n      " + l;
  }
  return s;
}

int MachineImpl::run() {
  // Signals are taken synchronously by the main loop; vCPU threads inherit the blocked mask and
  // unblock only the kick signal.
  struct sigaction sa {};
  sa.sa_handler = kick_handler;
  sigemptyset(&sa.sa_mask);
  ::sigaction(kKickSignal, &sa, nullptr);
  sigset_t set;
  sigemptyset(&set);
  for (int s : {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGALRM, kKickSignal})
    sigaddset(&set, s);
  // A write to a pipe whose reader went away (a serial `hostdev` pipe, a peer socket) fails with
  // EPIPE on that device instead of ending qvm.
  ::signal(SIGPIPE, SIG_IGN);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  sigset_t handled = set;
  sigdelset(&handled, kKickSignal);
  UniqueFd sfd(::signalfd(-1, &handled, SFD_CLOEXEC | SFD_NONBLOCK));
  if (!sfd) {
    log_fatal("signalfd: %s", std::strerror(errno));
    return kExitFatalBeforeStart;
  }
  auto st1 = loop_->add_fd(sfd.get(), [this, &sfd] {
    signalfd_siginfo si{};
    while (::read(sfd.get(), &si, sizeof si) == static_cast<ssize_t>(sizeof si))
      handle_signal(static_cast<int>(si.ssi_signo));
  });
  auto st2 = loop_->add_fd(stop_efd_.get(), [this] { loop_->stop(); });
  if (!st1 || !st2) {
    log_fatal("event loop set-up failed");
    return kExitFatalBeforeStart;
  }
  if (uses_stdin_) RawTerminal::enable();
  for (auto& fn : at_start_) fn();  // loadable vdevs: GUEST_CONFIGURED, GUEST_STARTING

  for (size_t i = 0; i < vcpus_.size(); ++i) threads_.emplace_back([this, i] { vcpu_thread(i); });
  log_debug("VM '%s' running with %zu vCPU(s)", cfg_.system_name().c_str(), vcpus_.size());
  if (auto s = loop_->run(); !s) request_stop(kExitFatalAfterStart, s.error().message);
  if (!stop_.stopping) request_stop(kExitFatalAfterStart, "event loop ended");

  // Kick every vCPU out of KVM_RUN (and out of the gate) and wait for it.
  gate_->stop();
  for (auto& v : vcpus_) v->request_exit();
  for (auto& t : threads_) pthread_kill(t.native_handle(), kKickSignal);
  for (auto& t : threads_) t.join();
  threads_.clear();
  RawTerminal::restore();
  std::lock_guard lk(stop_.mu);
  if (gdb_) gdb_->vm_ended(stop_.exit_code);
  if (stop_.exit_code == kRestartInPlace) {
    log_info("VM '%s' stopped: %s (restarting in place)", cfg_.system_name().c_str(),
             stop_.reason.c_str());
  } else if (stop_.exit_code == kExitGuestStop || (stop_.exit_code >= kExitGuestDefinedFirst &&
                                                   stop_.exit_code <= kExitGuestDefinedLast)) {
    log_info("VM '%s' stopped: %s (exit %d)", cfg_.system_name().c_str(), stop_.reason.c_str(),
             stop_.exit_code);
  } else {
    log_error("VM '%s' stopped: %s (exit %d)", cfg_.system_name().c_str(), stop_.reason.c_str(),
              stop_.exit_code);
  }
  return stop_.exit_code;
}

}  // namespace qvm::machine
