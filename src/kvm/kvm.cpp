#include "kvm/kvm.hpp"

#include <fcntl.h>
#include <sys/ioctl.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "base/log.hpp"

namespace qvm::kvm {

int xioctl(int fd, unsigned long req, const void* arg) {
  int r;
  do {
    r = ::ioctl(fd, req, arg);
  } while (r < 0 && errno == EINTR);
  return r < 0 ? -errno : r;
}

int xioctl(int fd, unsigned long req, unsigned long arg) {
  int r;
  do {
    r = ::ioctl(fd, req, arg);
  } while (r < 0 && errno == EINTR);
  return r < 0 ? -errno : r;
}

Result<KvmSystem> KvmSystem::open(const char* path) {
  KvmSystem s;
  s.fd_.reset(::open(path, O_RDWR | O_CLOEXEC));
  if (!s.fd_) return Error::from_errno(std::string("cannot open ") + path, errno);
  int v = xioctl(s.fd(), KVM_GET_API_VERSION, 0ul);
  if (v != KVM_API_VERSION)
    return make_error(strprintf("KVM API version %d, expected %d", v, KVM_API_VERSION));
  for (long cap : {KVM_CAP_IRQCHIP, KVM_CAP_PIT2, KVM_CAP_USER_MEMORY, KVM_CAP_IOEVENTFD,
                   KVM_CAP_IRQFD, KVM_CAP_READONLY_MEM, KVM_CAP_IMMEDIATE_EXIT}) {
    if (s.check_extension(cap) <= 0)
      return make_error(strprintf("KVM lacks required capability %ld", cap));
  }
  return s;
}

int KvmSystem::check_extension(long cap) const {
  return xioctl(fd(), KVM_CHECK_EXTENSION, static_cast<unsigned long>(cap));
}

Result<int> KvmSystem::vcpu_mmap_size() const {
  int n = xioctl(fd(), KVM_GET_VCPU_MMAP_SIZE, 0ul);
  if (n <= 0) return Error::from_errno("KVM_GET_VCPU_MMAP_SIZE", -n);
  return n;
}

std::vector<uint8_t> pack_cpuid(const std::vector<kvm_cpuid_entry2>& entries, uint32_t capacity) {
  std::vector<uint8_t> buf(sizeof(CpuidHeader) + capacity * sizeof(kvm_cpuid_entry2));
  CpuidHeader h{capacity, 0};
  std::memcpy(buf.data(), &h, sizeof h);
  if (!entries.empty())
    std::memcpy(buf.data() + sizeof h, entries.data(),
                std::min<size_t>(entries.size(), capacity) * sizeof(kvm_cpuid_entry2));
  return buf;
}

Result<std::vector<kvm_cpuid_entry2>> KvmSystem::supported_cpuid() const {
  constexpr uint32_t kMax = 256;
  std::vector<uint8_t> buf = pack_cpuid({}, kMax);
  int r = xioctl(fd(), kIoctlGetSupportedCpuid, buf.data());
  if (r < 0) return Error::from_errno("KVM_GET_SUPPORTED_CPUID", -r);
  CpuidHeader h{};
  std::memcpy(&h, buf.data(), sizeof h);
  std::vector<kvm_cpuid_entry2> out(std::min(h.nent, kMax));
  std::memcpy(out.data(), buf.data() + sizeof h, out.size() * sizeof(kvm_cpuid_entry2));
  return out;
}

Result<Vm> Vm::create(const KvmSystem& sys) {
  Vm vm;
  int fd = xioctl(sys.fd(), KVM_CREATE_VM, 0ul);
  if (fd < 0) return Error::from_errno("KVM_CREATE_VM", -fd);
  vm.fd_.reset(fd);
  // VMX needs a TSS and identity-map page below 4 GiB; other backends ignore or refuse these.
  if (int r = xioctl(vm.fd(), KVM_SET_TSS_ADDR, 0xfffbd000ul); r < 0)
    log_debug("KVM_SET_TSS_ADDR: %s (ignored)", std::strerror(-r));
  uint64_t ident = 0xfffbc000;
  if (int r = xioctl(vm.fd(), KVM_SET_IDENTITY_MAP_ADDR, &ident); r < 0)
    log_debug("KVM_SET_IDENTITY_MAP_ADDR: %s (ignored)", std::strerror(-r));
  return vm;
}

Status Vm::map_memory(const memory::GuestMemory& mem) {
  for (const auto& r : mem.regions()) {
    kvm_userspace_memory_region m{};
    {
      std::lock_guard lk(*slots_mu_);
      m.slot = next_slot_++;
    }
    m.flags = r.readonly ? KVM_MEM_READONLY : 0;
    m.guest_phys_addr = r.gpa;
    m.memory_size = r.size;
    m.userspace_addr = reinterpret_cast<uint64_t>(r.host());  // SAFETY: host address for KVM
    int rc = xioctl(fd(), KVM_SET_USER_MEMORY_REGION, &m);
    if (rc < 0)
      return Error::from_errno(
          strprintf("KVM_SET_USER_MEMORY_REGION at 0x%llx", static_cast<unsigned long long>(r.gpa)),
          -rc);
  }
  return {};
}

Status Vm::create_irqchip() {
  int r = xioctl(fd(), KVM_CREATE_IRQCHIP, 0ul);
  if (r < 0) return Error::from_errno("KVM_CREATE_IRQCHIP", -r);
  return {};
}

Status Vm::create_pit() {
  kvm_pit_config cfg{};
  cfg.flags = KVM_PIT_SPEAKER_DUMMY;
  int r = xioctl(fd(), KVM_CREATE_PIT2, &cfg);
  if (r < 0) return Error::from_errno("KVM_CREATE_PIT2", -r);
  return {};
}

Status Vm::set_pit_hpet_legacy(bool on) {
  kvm_pit_state2 st{};
  if (int r = xioctl(fd(), KVM_GET_PIT2, &st); r < 0) return Error::from_errno("KVM_GET_PIT2", -r);
  constexpr uint32_t kLegacy = KVM_PIT_FLAGS_HPET_LEGACY;
  st.flags = on ? (st.flags | kLegacy) : (st.flags & ~kLegacy);
  if (int r = xioctl(fd(), KVM_SET_PIT2, &st); r < 0) return Error::from_errno("KVM_SET_PIT2", -r);
  return {};
}

Status Vm::disable_hlt_exits() {
  kvm_enable_cap cap{};
  cap.cap = KVM_CAP_X86_DISABLE_EXITS;
  cap.args[0] = KVM_X86_DISABLE_EXITS_HLT;
  int r = xioctl(fd(), KVM_ENABLE_CAP, &cap);
  if (r < 0) return Error::from_errno("KVM_CAP_X86_DISABLE_EXITS", -r);
  return {};
}

Status Vm::set_irq_line(uint32_t gsi, bool level) {
  kvm_irq_level l{};
  l.irq = gsi;
  l.level = level ? 1 : 0;
  int r = xioctl(fd(), KVM_IRQ_LINE, &l);
  if (r < 0) return Error::from_errno("KVM_IRQ_LINE", -r);
  return {};
}

Status Vm::signal_msi(uint64_t addr, uint32_t data) {
  kvm_msi m{};
  m.address_lo = static_cast<uint32_t>(addr);
  m.address_hi = static_cast<uint32_t>(addr >> 32);
  m.data = data;
  int r = xioctl(fd(), KVM_SIGNAL_MSI, &m);
  if (r < 0) return Error::from_errno("KVM_SIGNAL_MSI", -r);
  return {};
}

Status Vm::add_ioeventfd(int efd, uint64_t addr, uint32_t len, bool pio,
                         std::optional<uint64_t> match) {
  kvm_ioeventfd e{};
  e.addr = addr;
  e.len = len;
  e.fd = efd;
  e.flags = (pio ? KVM_IOEVENTFD_FLAG_PIO : 0u) | (match ? KVM_IOEVENTFD_FLAG_DATAMATCH : 0u);
  e.datamatch = match.value_or(0);
  int r = xioctl(fd(), KVM_IOEVENTFD, &e);
  if (r < 0) return Error::from_errno("KVM_IOEVENTFD", -r);
  return {};
}

Status Vm::remove_ioeventfd(int efd, uint64_t addr, uint32_t len, bool pio,
                            std::optional<uint64_t> match) {
  kvm_ioeventfd e{};
  e.addr = addr;
  e.len = len;
  e.fd = efd;
  e.flags = KVM_IOEVENTFD_FLAG_DEASSIGN | (pio ? KVM_IOEVENTFD_FLAG_PIO : 0u) |
            (match ? KVM_IOEVENTFD_FLAG_DATAMATCH : 0u);
  e.datamatch = match.value_or(0);
  int r = xioctl(fd(), KVM_IOEVENTFD, &e);
  if (r < 0) return Error::from_errno("KVM_IOEVENTFD deassign", -r);
  return {};
}

Status Vm::add_irqfd(int efd, uint32_t gsi, int resample_fd) {
  kvm_irqfd f{};
  f.fd = static_cast<uint32_t>(efd);
  f.gsi = gsi;
  if (resample_fd >= 0) {
    f.flags = KVM_IRQFD_FLAG_RESAMPLE;
    f.resamplefd = static_cast<uint32_t>(resample_fd);
  }
  int r = xioctl(fd(), KVM_IRQFD, &f);
  if (r < 0) return Error::from_errno("KVM_IRQFD", -r);
  return {};
}

Status Vm::exit_on_unknown_msrs() {
  kvm_enable_cap c{};
  c.cap = KVM_CAP_X86_USER_SPACE_MSR;
  c.args[0] = KVM_MSR_EXIT_REASON_UNKNOWN;
  if (int rc = xioctl(fd(), KVM_ENABLE_CAP, &c); rc < 0)
    return Error::from_errno("KVM_CAP_X86_USER_SPACE_MSR", -rc);
  return {};
}

Status Vm::remove_irqfd(int efd, uint32_t gsi) {
  kvm_irqfd f{};
  f.fd = static_cast<uint32_t>(efd);
  f.gsi = gsi;
  f.flags = KVM_IRQFD_FLAG_DEASSIGN;
  int r = xioctl(fd(), KVM_IRQFD, &f);
  if (r < 0) return Error::from_errno("KVM_IRQFD deassign", -r);
  return {};
}

Result<uint32_t> Vm::add_memslot(uint64_t gpa, uint64_t size, void* host, bool readonly) {
  std::lock_guard lk(*slots_mu_);
  uint32_t slot;
  if (!free_slots_.empty()) {
    slot = free_slots_.back();
    free_slots_.pop_back();
  } else {
    slot = next_slot_++;
  }
  kvm_userspace_memory_region m{};
  m.slot = slot;
  m.flags = readonly ? KVM_MEM_READONLY : 0;
  m.guest_phys_addr = gpa;
  m.memory_size = size;
  m.userspace_addr = reinterpret_cast<uint64_t>(host);  // SAFETY: host address for KVM
  int rc = xioctl(fd(), KVM_SET_USER_MEMORY_REGION, &m);
  if (rc < 0) {
    free_slots_.push_back(slot);
    return Error::from_errno(
        strprintf("KVM_SET_USER_MEMORY_REGION at 0x%llx", static_cast<unsigned long long>(gpa)),
        -rc);
  }
  return slot;
}

Status Vm::remove_memslot(uint32_t slot) {
  std::lock_guard lk(*slots_mu_);
  kvm_userspace_memory_region m{};
  m.slot = slot;  // size 0 deletes the slot (api.rst 4.35)
  int rc = xioctl(fd(), KVM_SET_USER_MEMORY_REGION, &m);
  if (rc < 0) return Error::from_errno("deleting KVM memslot", -rc);
  free_slots_.push_back(slot);
  return {};
}

namespace {
constexpr uint32_t kIoapicPins = 24;
constexpr uint32_t kFirstMsiGsi = kIoapicPins;
constexpr uint32_t kMaxRoutes = 1024;  // KVM_MAX_IRQ_ROUTES is 4096; qvm needs few
}  // namespace

Status Vm::commit_routes_locked() {
  std::vector<kvm_irq_routing_entry> e;
  auto irqchip = [&](uint32_t gsi, uint32_t chip, uint32_t pin) {
    kvm_irq_routing_entry r{};
    r.gsi = gsi;
    r.type = KVM_IRQ_ROUTING_IRQCHIP;
    r.u.irqchip.irqchip = chip;
    r.u.irqchip.pin = pin;
    e.push_back(r);
  };
  // KVM's own default table (arch/x86/kvm/irq_comm.c), which a KVM_SET_GSI_ROUTING replaces.
  for (uint32_t gsi = 0; gsi < kIoapicPins; ++gsi) {
    if (gsi < 16) irqchip(gsi, gsi < 8 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE, gsi % 8);
    irqchip(gsi, KVM_IRQCHIP_IOAPIC, gsi);
  }
  for (const auto& [gsi, msg] : msi_routes_) {
    kvm_irq_routing_entry r{};
    r.gsi = gsi;
    r.type = KVM_IRQ_ROUTING_MSI;
    r.u.msi.address_lo = static_cast<uint32_t>(msg.first);
    r.u.msi.address_hi = static_cast<uint32_t>(msg.first >> 32);
    r.u.msi.data = msg.second;
    e.push_back(r);
  }
  std::vector<uint8_t> buf(sizeof(RoutingHeader) + e.size() * sizeof(kvm_irq_routing_entry));
  const RoutingHeader h{static_cast<uint32_t>(e.size()), 0};
  std::memcpy(buf.data(), &h, sizeof h);
  std::memcpy(buf.data() + sizeof h, e.data(), e.size() * sizeof(kvm_irq_routing_entry));
  const int rc = xioctl(fd(), kIoctlSetGsiRouting, buf.data());
  if (rc < 0) return Error::from_errno("KVM_SET_GSI_ROUTING", -rc);
  return {};
}

Result<uint32_t> Vm::add_msi_route(uint64_t addr, uint32_t data) {
  std::lock_guard lk(*routes_mu_);
  uint32_t gsi = kFirstMsiGsi;
  while (msi_routes_.count(gsi)) ++gsi;
  if (gsi >= kMaxRoutes) return make_error("no free GSI for an MSI route");
  msi_routes_[gsi] = {addr, data};
  if (auto s = commit_routes_locked(); !s) {
    msi_routes_.erase(gsi);
    return std::move(s).error();
  }
  return gsi;
}

Status Vm::update_msi_route(uint32_t gsi, uint64_t addr, uint32_t data) {
  std::lock_guard lk(*routes_mu_);
  auto it = msi_routes_.find(gsi);
  if (it == msi_routes_.end()) return make_error("no MSI route at that GSI");
  if (it->second == std::pair<uint64_t, uint32_t>{addr, data}) return {};
  it->second = {addr, data};
  return commit_routes_locked();
}

Status Vm::remove_msi_route(uint32_t gsi) {
  std::lock_guard lk(*routes_mu_);
  if (!msi_routes_.erase(gsi)) return {};
  return commit_routes_locked();
}

}  // namespace qvm::kvm
