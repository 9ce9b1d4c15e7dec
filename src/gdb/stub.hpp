// The GDB remote protocol over a Target (design §5 "Live GDB"; GDB manual, "Remote Protocol").
// One client at a time, all-stop mode: when GDB is told the VM stopped, every vCPU is parked.
// Each vCPU is a GDB thread (id = index + 1). Input is untrusted bytes from a socket: packets are
// bounded (kMaxPacket), malformed requests get an error reply (`E..`) and change nothing, and
// replies are built from bounded reads (kMaxMemory per `m`).
//
// Single stepping an instruction that faults stops at the first instruction of the guest's
// fault handler (no QNX J2502869): before a step the stub puts execute breakpoints in the debug
// registers GDB left free on the handlers (read from the IDT) of the faults an instruction most
// often raises — #UD, #GP, #PF, #DE, in that order — and a hit there ends the step.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "gdb/packet.hpp"
#include "gdb/target.hpp"

namespace qvm::gdb {

inline constexpr size_t kMaxMemory = 0x1000;  // bytes per `m` reply (hex doubles it)

struct StubStats {
  uint64_t packets = 0, bad_packets = 0, stops = 0, steps = 0, debug_errors = 0;
};

class Stub {
 public:
  // `send` writes bytes to the client; `close` ends the connection (after `D`).
  Stub(Target& t, std::function<void(std::string_view)> send, std::function<void()> close);

  // A client connected: the VM is stopped and reported as stopped by a SIGTRAP on vCPU 0 (or
  // already parked before its first instruction with `,paused`).
  void attach();
  // Bytes from the client.
  void feed(std::span<const uint8_t> bytes);
  // The connection went away without `D`: as `D` (breakpoints out, the VM runs on).
  void disconnected();
  // The machine parked every vCPU because of this trap (called on the event-loop thread).
  void on_trap(const DebugTrap& t);
  // The VM ended (its vCPUs are gone): GDB's int3s come out of guest memory (memory a shmem
  // region or a dump may still show), and a client waiting for a stop is told the exit code
  // (`W`), as a native target's exit.
  void vm_ended(int exit_code);

  bool attached() const { return attached_; }
  bool running() const { return running_; }
  const StubStats& stats() const { return stats_; }
  // The last error the target returned when the stub set debug state (for the status report).
  const std::string& last_error() const { return last_error_; }

 private:
  enum class StopKind { kSignal, kSwBreak, kHwBreak, kWatch, kStep };
  struct Stop {
    size_t vcpu = 0;
    int signal = 5;
    StopKind kind = StopKind::kSignal;
    uint64_t watch_addr = 0;
    uint8_t watch_rw = 0;
  };

  void handle(std::string_view p);
  void reply(std::string_view payload);
  std::string stop_reply() const;
  void report_stop(const Stop& s);

  // Requests.
  std::string query(std::string_view p);
  std::string read_memory(std::string_view args);
  std::string write_memory(std::string_view args, bool binary);
  std::string set_thread(std::string_view p);
  std::string monitor(std::string_view hex);
  std::string regs_all();
  std::string regs_write(std::string_view hex);
  std::string reg_read(std::string_view n);
  std::string reg_write(std::string_view args);
  std::string breakpoint(std::string_view args, bool insert);
  bool vcont(std::string_view args);  // false: malformed (an error was sent)
  void resume(std::optional<size_t> step_vcpu);
  bool step_allowed(size_t vcpu);  // false (and a log line) where the host cannot trap the step
  void warn_limit(const char* what);
  void detach();
  std::optional<size_t> thread_index(std::string_view id, bool allow_any) const;

  // Breakpoints (stub_breakpoints.cpp).
  bool insert_sw(uint64_t addr);
  bool remove_sw(uint64_t addr);
  int free_debug_register() const;
  void plant_fault_catchers(size_t vcpu);
  void clear_step_flag_in_frame(size_t vcpu, uint8_t vector);
  void remove_fault_catchers();
  void remove_all_breakpoints();
  void shadow(uint64_t addr, std::span<uint8_t> data) const;
  void apply_debug(std::optional<size_t> step_vcpu);

  Target& t_;
  std::function<void(std::string_view)> send_;
  std::function<void()> close_;
  PacketDecoder dec_;
  bool attached_ = false, running_ = false, no_ack_ = false;
  std::string last_sent_;
  int resends_ = 0;
  Arch arch_ = Arch::kX86_64;
  bool arch_fixed_ = false;  // chosen when GDB read target.xml
  size_t g_vcpu_ = 0, c_vcpu_ = 0;
  Stop last_stop_;
  std::optional<size_t> stepping_;
  bool inject_bp_ = false;
  bool physical_ = false;           // `monitor phys on`
  std::map<uint64_t, uint8_t> sw_;  // GDB's int3s: address -> the byte under it
  HwBreakpoint hw_[4];
  // What each debug register holds: GDB's Z1-Z4 (1 hw breakpoint, 2 write, 3 read, 4 access
  // watch), a Z0 breakpoint where the host cannot intercept int3 (kSwInDr), or a fault catcher
  // of the current step (kCatcher).
  static constexpr uint8_t kSwInDr = 5, kCatcher = 6;
  uint8_t hw_kind_[4] = {};
  uint8_t catcher_vector_[4] = {};
  bool step_guest_tf_ = false;  // the guest had RFLAGS.TF set itself before the step
  StubStats stats_;
  std::string last_error_;
};

}  // namespace qvm::gdb
