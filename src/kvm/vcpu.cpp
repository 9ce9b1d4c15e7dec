#include "kvm/vcpu.hpp"

#include <sys/ioctl.h>
#include <sys/mman.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "base/log.hpp"

namespace qvm::kvm {

Result<Vcpu> Vcpu::create(const KvmSystem& sys, const Vm& vm, uint32_t id) {
  Vcpu v;
  v.id_ = id;
  int fd = xioctl(vm.fd(), KVM_CREATE_VCPU, static_cast<unsigned long>(id));
  if (fd < 0) return Error::from_errno(strprintf("KVM_CREATE_VCPU %u", id), -fd);
  v.fd_.reset(fd);
  v.run_size_ = static_cast<size_t>(QVM_TRY(sys.vcpu_mmap_size()));
  void* p = ::mmap(nullptr, v.run_size_, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) return Error::from_errno("mmap of kvm_run", errno);
  v.run_ = static_cast<kvm_run*>(p);
  return v;
}

Vcpu::Vcpu(Vcpu&& o) noexcept
    : fd_(std::move(o.fd_)),
      run_(std::exchange(o.run_, nullptr)),
      run_size_(o.run_size_),
      id_(o.id_) {}

Vcpu::~Vcpu() {
  if (run_ != nullptr) ::munmap(run_, run_size_);
}

void Vcpu::request_exit() {
  // SAFETY: immediate_exit is a byte the kernel reads on entry; a racy store is what the API
  // expects.
  __atomic_store_n(&run_->immediate_exit, 1, __ATOMIC_SEQ_CST);
}

void Vcpu::clear_exit_request() {
  __atomic_store_n(&run_->immediate_exit, 0, __ATOMIC_SEQ_CST);
}

Result<VcpuExit> Vcpu::run() {
  int r = ::ioctl(fd(), KVM_RUN, 0);
  if (r < 0) {
    if (errno == EINTR || errno == EAGAIN) return VcpuExit{InterruptedExit{}};
    return Error::from_errno("KVM_RUN", errno);
  }
  auto* base = reinterpret_cast<uint8_t*>(run_);  // SAFETY: kvm_run page, data_offset inside it
  switch (run_->exit_reason) {
    case KVM_EXIT_IO: {
      IoExit e;
      e.port = run_->io.port;
      e.size = run_->io.size;
      e.write = run_->io.direction == KVM_EXIT_IO_OUT;
      e.count = run_->io.count;
      uint64_t len = uint64_t{e.size} * e.count;
      if (run_->io.data_offset + len > run_size_) return VcpuExit{UnknownExit{KVM_EXIT_IO}};
      e.data = std::span<uint8_t>(base + run_->io.data_offset, static_cast<size_t>(len));
      return VcpuExit{e};
    }
    case KVM_EXIT_MMIO: {
      MmioExit e;
      e.addr = run_->mmio.phys_addr;
      e.len = static_cast<uint8_t>(std::min<uint32_t>(run_->mmio.len, 8));
      e.write = run_->mmio.is_write != 0;
      e.data = std::span<uint8_t>(run_->mmio.data, e.len);
      return VcpuExit{e};
    }
    case KVM_EXIT_HLT:
      return VcpuExit{HltExit{}};
    case KVM_EXIT_SHUTDOWN:
      return VcpuExit{ShutdownExit{}};
    case KVM_EXIT_SYSTEM_EVENT:
      return VcpuExit{SystemEventExit{run_->system_event.type}};
    case KVM_EXIT_INTR:
      return VcpuExit{InterruptedExit{}};
    case KVM_EXIT_FAIL_ENTRY:
      return VcpuExit{FailEntryExit{run_->fail_entry.hardware_entry_failure_reason}};
    case KVM_EXIT_DEBUG:
      return VcpuExit{
          DebugExit{run_->debug.arch.exception, run_->debug.arch.pc, run_->debug.arch.dr6}};
    case KVM_EXIT_X86_RDMSR:
    case KVM_EXIT_X86_WRMSR: {
      MsrExit e;
      e.index = run_->msr.index;
      e.write = run_->exit_reason == KVM_EXIT_X86_WRMSR;
      e.data = run_->msr.data;
      e.error = &run_->msr.error;
      static_assert(sizeof(run_->msr.data) == sizeof(uint64_t));
      // SAFETY: __u64 and uint64_t are the same 64-bit unsigned type under different names.
      e.value = reinterpret_cast<uint64_t*>(&run_->msr.data);
      return VcpuExit{e};
    }
    case KVM_EXIT_INTERNAL_ERROR: {
      InternalErrorExit e;
      e.suberror = run_->internal.suberror;
      for (uint32_t i = 0; i < run_->internal.ndata && i < 16; ++i)
        e.data.push_back(run_->internal.data[i]);
      return VcpuExit{e};
    }
    default:
      return VcpuExit{UnknownExit{run_->exit_reason}};
  }
}

Result<kvm_regs> Vcpu::regs() const {
  kvm_regs r{};
  if (int rc = xioctl(fd(), KVM_GET_REGS, &r); rc < 0)
    return Error::from_errno("KVM_GET_REGS", -rc);
  return r;
}
Status Vcpu::set_regs(const kvm_regs& r) {
  if (int rc = xioctl(fd(), KVM_SET_REGS, &r); rc < 0)
    return Error::from_errno("KVM_SET_REGS", -rc);
  return {};
}
Result<kvm_sregs> Vcpu::sregs() const {
  kvm_sregs s{};
  if (int rc = xioctl(fd(), KVM_GET_SREGS, &s); rc < 0)
    return Error::from_errno("KVM_GET_SREGS", -rc);
  return s;
}
Status Vcpu::set_sregs(const kvm_sregs& s) {
  if (int rc = xioctl(fd(), KVM_SET_SREGS, &s); rc < 0)
    return Error::from_errno("KVM_SET_SREGS", -rc);
  return {};
}
Status Vcpu::set_cpuid(const std::vector<kvm_cpuid_entry2>& entries) {
  std::vector<uint8_t> buf = pack_cpuid(entries, static_cast<uint32_t>(entries.size()));
  if (int rc = xioctl(fd(), kIoctlSetCpuid2, buf.data()); rc < 0)
    return Error::from_errno("KVM_SET_CPUID2", -rc);
  return {};
}
Result<kvm_mp_state> Vcpu::mp_state() const {
  kvm_mp_state s{};
  if (int rc = xioctl(fd(), KVM_GET_MP_STATE, &s); rc < 0)
    return Error::from_errno("KVM_GET_MP_STATE", -rc);
  return s;
}
Result<kvm_fpu> Vcpu::fpu() const {
  kvm_fpu f{};
  if (int rc = xioctl(fd(), KVM_GET_FPU, &f); rc < 0) return Error::from_errno("KVM_GET_FPU", -rc);
  return f;
}
Status Vcpu::set_fpu(const kvm_fpu& f) {
  if (int rc = xioctl(fd(), KVM_SET_FPU, &f); rc < 0) return Error::from_errno("KVM_SET_FPU", -rc);
  return {};
}
Status Vcpu::set_guest_debug(const kvm_guest_debug& d) {
  if (int rc = xioctl(fd(), KVM_SET_GUEST_DEBUG, &d); rc < 0)
    return Error::from_errno("KVM_SET_GUEST_DEBUG", -rc);
  return {};
}

Status Vcpu::inject_exception(uint8_t vector) {
  kvm_vcpu_events ev{};
  if (int rc = xioctl(fd(), KVM_GET_VCPU_EVENTS, &ev); rc < 0)
    return Error::from_errno("KVM_GET_VCPU_EVENTS", -rc);
  // Only the exception: leave the interrupt, NMI and SIPI state KVM reported untouched.
  ev.flags = 0;
  ev.exception.injected = 1;
  ev.exception.nr = vector;
  ev.exception.has_error_code = 0;
  ev.exception.error_code = 0;
  if (int rc = xioctl(fd(), KVM_SET_VCPU_EVENTS, &ev); rc < 0)
    return Error::from_errno("KVM_SET_VCPU_EVENTS", -rc);
  return {};
}

}  // namespace qvm::kvm
