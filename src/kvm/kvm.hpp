// The KVM system and VM objects (Documentation/virt/kvm/api.rst). Each owns its fd; a Vm keeps
// the memory slots it registered in sync with a GuestMemory.
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "base/result.hpp"
#include "base/unique_fd.hpp"
#include "memory/guest_memory.hpp"

namespace qvm::kvm {

// The uapi headers declare kvm_cpuid2 with __DECLARE_FLEX_ARRAY, which a C++ compiler sizes as
// 12 bytes (the empty placeholder struct takes a byte), giving wrong ioctl numbers and a wrong
// `entries` offset. These are the C layout: an 8-byte header followed by the entries.
struct CpuidHeader {
  uint32_t nent;
  uint32_t padding;
};
inline constexpr unsigned long kIoctlGetSupportedCpuid = _IOWR(KVMIO, 0x05, CpuidHeader);
inline constexpr unsigned long kIoctlSetCpuid2 = _IOW(KVMIO, 0x90, CpuidHeader);
// kvm_irq_routing has the same flexible-array declaration: an 8-byte header, then the entries.
struct RoutingHeader {
  uint32_t nr;
  uint32_t flags;
};
inline constexpr unsigned long kIoctlSetGsiRouting = _IOW(KVMIO, 0x6a, RoutingHeader);
// Packs entries after a CpuidHeader, as KVM expects.
std::vector<uint8_t> pack_cpuid(const std::vector<kvm_cpuid_entry2>& entries, uint32_t capacity);

// ioctl that retries on EINTR and returns the result or -errno.
int xioctl(int fd, unsigned long req, const void* arg);
int xioctl(int fd, unsigned long req, unsigned long arg);

class KvmSystem {
 public:
  static Result<KvmSystem> open(const char* path = "/dev/kvm");
  int fd() const { return fd_.get(); }
  int check_extension(long cap) const;
  Result<int> vcpu_mmap_size() const;
  // The CPUID leaves this host's KVM supports (KVM_GET_SUPPORTED_CPUID).
  Result<std::vector<kvm_cpuid_entry2>> supported_cpuid() const;

 private:
  UniqueFd fd_;
};

class Vm {
 public:
  static Result<Vm> create(const KvmSystem& sys);
  int fd() const { return fd_.get(); }

  // One memslot per region; ROM regions are read-only to the guest (KVM_MEM_READONLY), so guest
  // writes to them exit as MMIO and are dropped by the `unsupported reference` policy.
  Status map_memory(const memory::GuestMemory& mem);
  // In-kernel PIC + IOAPIC + LAPIC (KVM_CREATE_IRQCHIP) and PIT (KVM_CREATE_PIT2).
  Status create_irqchip();
  Status create_pit();
  // KVM_PIT_FLAGS_HPET_LEGACY: the in-kernel PIT's channel 0 stops driving IRQ0 while an HPET
  // is in legacy replacement mode (IA-PC HPET 1.0a §2.3.9.2.2), as on a PC.
  Status set_pit_hpet_legacy(bool on);
  Status set_irq_line(uint32_t gsi, bool level);
  // KVM_CAP_X86_DISABLE_EXITS(HLT): guest HLT no longer exits (call before creating vCPUs).
  Status disable_hlt_exits();
  // KVM_CAP_X86_USER_SPACE_MSR with KVM_MSR_EXIT_REASON_UNKNOWN: accesses to MSRs KVM does not
  // know exit to qvm (MsrExit) instead of raising #GP in the guest (`unsupported register`).
  Status exit_on_unknown_msrs();
  Status signal_msi(uint64_t addr, uint32_t data);
  // Notification without exits to user space: ioeventfd on a PIO/MMIO address, irqfd on a GSI.
  Status add_ioeventfd(int fd, uint64_t addr, uint32_t len, bool pio,
                       std::optional<uint64_t> match);
  Status remove_ioeventfd(int fd, uint64_t addr, uint32_t len, bool pio,
                          std::optional<uint64_t> match);
  Status add_irqfd(int fd, uint32_t gsi, int resample_fd = -1);
  Status remove_irqfd(int fd, uint32_t gsi);
  // GSI routing (KVM_SET_GSI_ROUTING, api.rst 4.52): the in-kernel irqchip's default routes (GSI
  // 0-15 to the 8259 pins and the IOAPIC pins, 16-23 to the IOAPIC) plus MSI routes added at run
  // time; an irqfd on an MSI route is injected in atomic context, with no thread in between
  // (an IOAPIC pin's goes through a kernel work item). Any thread.
  Result<uint32_t> add_msi_route(uint64_t addr, uint32_t data);
  Status update_msi_route(uint32_t gsi, uint64_t addr, uint32_t data);
  Status remove_msi_route(uint32_t gsi);
  // A memslot added at run time (shared-memory regions, design §3.2): host memory the caller
  // keeps mapped until remove_memslot. Any thread; slots are reused once removed.
  Result<uint32_t> add_memslot(uint64_t gpa, uint64_t size, void* host, bool readonly);
  Status remove_memslot(uint32_t slot);

 private:
  UniqueFd fd_;
  Status commit_routes_locked();
  std::unique_ptr<std::mutex> slots_mu_ = std::make_unique<std::mutex>();
  std::unique_ptr<std::mutex> routes_mu_ = std::make_unique<std::mutex>();
  std::map<uint32_t, std::pair<uint64_t, uint32_t>> msi_routes_;  // GSI -> address, data
  uint32_t next_slot_ = 0;
  std::vector<uint32_t> free_slots_;
};

std::string exit_reason_name(uint32_t reason);

}  // namespace qvm::kvm
