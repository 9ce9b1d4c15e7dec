// Guest dumps (spec §3.13, §8.5; docs/debugging.md): the machine's side. Every vCPU is parked
// outside KVM_RUN through the gate (a consistent state: no vCPU changes memory or registers while
// they are written), each one's registers are read, and dump/ writes them with all guest memory to
// the `dump` destination. Runs on the event loop's thread (SIGUSR2, a watchdog's expiry), which
// the dump holds for its duration: the vCPUs are paused anyway.
#include <chrono>
#include <ctime>
#include <thread>

#include "base/log.hpp"
#include "dump/destination.hpp"
#include "machine/machine_impl.hpp"

namespace qvm::machine {
namespace {

dump::VcpuRegs vcpu_regs(const kvm_regs& r, const kvm_sregs& s) {
  dump::VcpuRegs d;
  d.rax = r.rax;
  d.rbx = r.rbx;
  d.rcx = r.rcx;
  d.rdx = r.rdx;
  d.rsi = r.rsi;
  d.rdi = r.rdi;
  d.rbp = r.rbp;
  d.rsp = r.rsp;
  d.r8 = r.r8;
  d.r9 = r.r9;
  d.r10 = r.r10;
  d.r11 = r.r11;
  d.r12 = r.r12;
  d.r13 = r.r13;
  d.r14 = r.r14;
  d.r15 = r.r15;
  d.rip = r.rip;
  d.rflags = r.rflags;
  d.cs = s.cs.selector;
  d.ss = s.ss.selector;
  d.ds = s.ds.selector;
  d.es = s.es.selector;
  d.fs = s.fs.selector;
  d.gs = s.gs.selector;
  d.fs_base = s.fs.base;
  d.gs_base = s.gs.base;
  d.cr0 = s.cr0;
  d.cr2 = s.cr2;
  d.cr3 = s.cr3;
  d.cr4 = s.cr4;
  d.efer = s.efer;
  d.gdt_base = s.gdt.base;
  d.gdt_limit = s.gdt.limit;
  d.idt_base = s.idt.base;
  d.idt_limit = s.idt.limit;
  return d;
}

// resume_all() on every way out once pause_all() returned.
class PauseAll {
 public:
  explicit PauseAll(VcpuGate& g) : g_(g) { g_.pause_all(); }
  ~PauseAll() { g_.resume_all(); }
  PauseAll(const PauseAll&) = delete;
  PauseAll& operator=(const PauseAll&) = delete;

 private:
  VcpuGate& g_;
};

}  // namespace

Status MachineImpl::write_dump(std::string_view reason) {
  if (!cfg_.dump) return make_error("no 'dump' configured (spec §3.13)");
  if (opts_.dryrun || !gate_) return make_error("no VM is running (dryrun)");
  // The gate waits for every vCPU thread to park: before they exist it would wait forever, and on
  // a vCPU thread it would wait for itself.
  if (threads_.empty()) return make_error("the vCPUs have not started");
  for (const auto& t : threads_)
    if (t.get_id() == std::this_thread::get_id())
      return make_error("a dump cannot be written from a vCPU thread");
  if (dumping_) return make_error("a dump is being written");
  const dump::Destination dest = QVM_TRY(dump::Destination::parse(*cfg_.dump));

  dumping_ = true;
  const auto t0 = std::chrono::steady_clock::now();
  Result<dump::Written> written = make_error("");
  {
    PauseAll paused(*gate_);
    dump::CoreInput in;
    in.name = system_name_;
    Status regs_ok;
    for (const auto& v : vcpus_) {
      auto r = v->regs();
      auto s = v->sregs();
      if (!r || !s) {
        regs_ok = make_error("vCPU " + std::to_string(v->id()) + ": " +
                             (!r ? r.error().message : s.error().message));
        break;
      }
      in.vcpus.push_back(vcpu_regs(*r, *s));
    }
    for (const auto& region : mem_.regions())
      in.memory.push_back({region.gpa, {region.host(), region.size}, region.readonly});
    written = regs_ok ? dump::write_dump(dest, system_name_, std::time(nullptr), in)
                      : Result<dump::Written>(regs_ok.error());
  }
  dumping_ = false;
  if (!written) return written.error();
  ++dumps_written_;
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  log_info("guest dump (%.*s): %s, %.1f MiB in %.2f s", static_cast<int>(reason.size()),
           reason.data(), written->where.c_str(),
           static_cast<double>(written->bytes) / (1024.0 * 1024.0), secs);
  return {};
}

void MachineImpl::check_dump_destination() const {
  if (!cfg_.dump) return;
  auto dest = dump::Destination::parse(*cfg_.dump);
  Status s = dest ? dump::check_destination(*dest) : Status(dest.error());
  if (!s)
    log_warn("dump %s: %s: guest dumps will fail until this is fixed", cfg_.dump->c_str(),
             s.error().message.c_str());
}

std::string MachineImpl::dump_status() const {
  if (!cfg_.dump) return "dumps: none ('dump' not configured)";
  auto dest = dump::Destination::parse(*cfg_.dump);
  std::string s =
      strprintf("dumps: to %s, %llu written", dest ? dest->describe().c_str() : cfg_.dump->c_str(),
                static_cast<unsigned long long>(dumps_written_));
  if (const size_t n = dump::reap_children())
    s += strprintf(", %zu dump command(s) still running", n);
  return s;
}

}  // namespace qvm::machine
