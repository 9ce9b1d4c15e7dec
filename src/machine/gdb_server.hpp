// `set gdb` (design §5 "Live GDB"): the listening socket, the one client connection, and the
// gdb::Target over this VM's vCPUs and memory. Runs on the event loop; the vCPU threads reach it
// only through on_debug_exit() (KVM_EXIT_DEBUG), and only while a client has debugging enabled:
// with no client attached the vCPUs never see it (VcpuGate's fast path is one atomic load).
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "base/log.hpp"
#include "base/result.hpp"
#include "base/unique_fd.hpp"
#include "config/variables.hpp"
#include "event/event_loop.hpp"
#include "gdb/stub.hpp"
#include "kvm/vcpu.hpp"
#include "machine/vcpu_gate.hpp"
#include "memory/guest_memory.hpp"

namespace qvm::machine {

class GdbServer final : private gdb::Target {
 public:
  struct Parts {
    std::vector<std::unique_ptr<kvm::Vcpu>>* vcpus;
    VcpuGate* gate;
    memory::GuestMemory* mem;
    event::EventLoop* loop;
    std::function<void(int exit_code, const std::string& why)> request_stop;
    uint32_t debug_caps;  // KVM_CAP_SET_GUEST_DEBUG2: the KVM_GUESTDBG_* flags KVM supports
  };
  // Binds the endpoint (an error names it) and starts listening on the loop. With `paused`,
  // every vCPU is held before its first instruction until a client attaches and resumes it.
  static Result<std::unique_ptr<GdbServer>> create(const config::GdbEndpoint& ep, Parts parts);
  ~GdbServer() override;

  // vCPU thread `vcpu` left KVM_RUN with KVM_EXIT_DEBUG: it holds itself and the event loop
  // reports the stop to GDB.
  void on_debug_exit(size_t vcpu, const kvm::DebugExit& e);
  std::vector<std::string> status() const;
  // After the vCPU threads ended: see Stub::vm_ended.
  void vm_ended(int exit_code);
  const std::string& where() const { return where_; }

 private:
  explicit GdbServer(Parts p);
  void on_accept();
  void on_client_readable();
  void on_traps();
  void drop_client(const char* why);
  void send(std::string_view bytes);
  // After the stub ran: a send that failed inside it ends the session here, not re-entrantly.
  void after_stub();

  // gdb::Target
  size_t vcpu_count() const override { return parts_.vcpus->size(); }
  gdb::DebugLimits limits() const override { return limits_; }
  gdb::Arch arch(size_t vcpu) override;
  Result<gdb::X86State> read_registers(size_t vcpu) override;
  Status write_registers(size_t vcpu, const gdb::X86State& s) override;
  Result<gdb::IdtInfo> idt(size_t vcpu) override;
  size_t read_memory(size_t vcpu, uint64_t addr, std::span<uint8_t> out) override;
  size_t write_memory(size_t vcpu, uint64_t addr, std::span<const uint8_t> in) override;
  void set_physical(bool physical) override { physical_ = physical; }
  Status set_debug(size_t vcpu, const gdb::DebugState& d) override;
  void stop_all() override;
  void resume(std::span<const size_t> vcpus) override;
  void kill() override;
  // Guest-physical address of `va` on `vcpu` (physical already with paging off).
  std::optional<uint64_t> translate(size_t vcpu, uint64_t va);
  size_t each_page(size_t vcpu, uint64_t addr, size_t len,
                   const std::function<bool(uint64_t gpa, size_t off, size_t n)>& fn);
  // A stopped vCPU's registers do not change until it runs or GDB writes them: each is read
  // from KVM once per stop (a step needs them several times).
  Result<kvm_sregs> cached_sregs(size_t vcpu);
  struct Cache {
    std::optional<kvm_sregs> sregs;
    std::optional<gdb::X86State> state;
  };
  std::vector<Cache> cache_;
  std::vector<std::optional<gdb::DebugState>> applied_;  // what KVM has, per vCPU

  Parts parts_;
  gdb::DebugLimits limits_;
  std::string where_;
  std::string unix_path_;  // removed on exit
  UniqueFd listen_, client_, trap_efd_;
  std::unique_ptr<gdb::Stub> stub_;
  std::mutex traps_mu_;
  std::vector<gdb::DebugTrap> traps_;
  uint64_t refused_ = 0, sessions_ = 0;
  bool send_failed_ = false;
  bool physical_ = false;
  RateLimit session_log_{1.0, 10.0};  // attach/detach lines: a client may connect in a loop
};

}  // namespace qvm::machine
