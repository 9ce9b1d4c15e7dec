// Breakpoints of the GDB stub: GDB's int3s (Z0), the four debug registers (Z1-Z4, Z0 where the
// host cannot intercept int3, the fault catchers of a single step), and what each vCPU is told
// through Target::set_debug().
#include <set>

#include "gdb/stub.hpp"

namespace qvm::gdb {
namespace {
constexpr uint8_t kInt3 = 0xcc;
constexpr uint64_t kTrapFlag = 1u << 8;  // RFLAGS.TF
}  // namespace

int Stub::free_debug_register() const {
  for (int i = 0; i < 4; ++i)
    if (!hw_[i].enabled) return i;
  return -1;
}

bool Stub::insert_sw(uint64_t addr) {
  if (!t_.limits().sw_breakpoints) {
    // An execute breakpoint in a debug register stops where the int3 would have.
    for (int i = 0; i < 4; ++i)
      if (hw_[i].enabled && hw_kind_[i] == kSwInDr && hw_[i].addr == addr) return true;
    const int r = free_debug_register();
    if (r < 0) return false;
    hw_[r] = HwBreakpoint{true, addr, 0, 1};
    hw_kind_[r] = kSwInDr;
    return true;
  }
  if (sw_.count(addr)) return true;
  uint8_t orig = 0;
  if (t_.read_memory(g_vcpu_, addr, std::span<uint8_t>(&orig, 1)) != 1) return false;
  const uint8_t cc = kInt3;
  if (t_.write_memory(g_vcpu_, addr, std::span<const uint8_t>(&cc, 1)) != 1) return false;
  sw_[addr] = orig;
  return true;
}

bool Stub::remove_sw(uint64_t addr) {
  for (int i = 0; i < 4; ++i) {
    if (hw_[i].enabled && hw_kind_[i] == kSwInDr && hw_[i].addr == addr) {
      hw_[i] = HwBreakpoint{};
      hw_kind_[i] = 0;
      return true;
    }
  }
  auto it = sw_.find(addr);
  if (it == sw_.end()) return false;
  const uint8_t orig = it->second;
  sw_.erase(it);
  return t_.write_memory(g_vcpu_, addr, std::span<const uint8_t>(&orig, 1)) == 1;
}

void Stub::remove_all_breakpoints() {
  while (!sw_.empty()) remove_sw(sw_.begin()->first);
}

void Stub::plant_fault_catchers(size_t vcpu) {
  auto idt = t_.idt(vcpu);
  auto regs = t_.read_registers(vcpu);
  if (!idt || !regs || !idt->protected_mode) return;  // real mode: the IVT, not handled here
  const uint64_t gate = idt->long_mode ? 16 : 8;
  std::set<uint64_t> done;
  // The faults a single instruction most often raises (Intel SDM vol. 3 §6.15): #UD, #GP, #PF,
  // #DE. Each present gate's handler gets a free debug register while there is one.
  for (uint64_t v : {6ull, 13ull, 14ull, 0ull}) {
    const int r = free_debug_register();
    if (r < 0) break;
    if ((v + 1) * gate - 1 > idt->limit) continue;
    uint8_t g[16] = {};
    if (t_.read_memory(vcpu, idt->base + v * gate, std::span<uint8_t>(g, gate)) != gate) continue;
    if (!(g[5] & 0x80)) continue;  // not present
    uint64_t off = static_cast<uint64_t>(g[0]) | static_cast<uint64_t>(g[1]) << 8 |
                   static_cast<uint64_t>(g[6]) << 16 | static_cast<uint64_t>(g[7]) << 24;
    if (idt->long_mode)
      off |= static_cast<uint64_t>(g[8]) << 32 | static_cast<uint64_t>(g[9]) << 40 |
             static_cast<uint64_t>(g[10]) << 48 | static_cast<uint64_t>(g[11]) << 56;
    if (off == regs->rip || !done.insert(off).second) continue;
    hw_[r] = HwBreakpoint{true, off, 0, 1};
    hw_kind_[r] = kCatcher;
    catcher_vector_[r] = static_cast<uint8_t>(v);
  }
  step_guest_tf_ = (regs->rflags & kTrapFlag) != 0;
}

// The step's trap flag was live when the fault was delivered, so the CPU saved it in the
// exception frame: left there, the handler's iret would re-arm it and the guest would take a
// #DB it never asked for after GDB resumes it. The frame sits at RSP, as the CPU pushed it (SDM
// vol. 3 §6.14.2 / §6.12.1): [error code,] RIP, CS, RFLAGS.
void Stub::clear_step_flag_in_frame(size_t vcpu, uint8_t vector) {
  if (step_guest_tf_) return;
  auto idt = t_.idt(vcpu);
  auto regs = t_.read_registers(vcpu);
  if (!idt || !regs) return;
  const bool has_error = vector == 8 || (vector >= 10 && vector <= 14) || vector == 17 ||
                         vector == 21 || vector == 29 || vector == 30;
  const uint64_t slot = idt->long_mode ? 8 : 4;
  const uint64_t at = regs->gpr[7] + (has_error ? slot : 0) + 2 * slot;
  uint8_t b[8] = {};
  if (t_.read_memory(vcpu, at, std::span<uint8_t>(b, slot)) != slot) return;
  b[1] = static_cast<uint8_t>(b[1] & ~(kTrapFlag >> 8));
  (void)t_.write_memory(vcpu, at, std::span<const uint8_t>(b, slot));
}

void Stub::remove_fault_catchers() {
  for (int i = 0; i < 4; ++i) {
    if (hw_kind_[i] == kCatcher) {
      hw_[i] = HwBreakpoint{};
      hw_kind_[i] = 0;
    }
  }
}

void Stub::shadow(uint64_t addr, std::span<uint8_t> data) const {
  for (auto it = sw_.lower_bound(addr); it != sw_.end() && it->first - addr < data.size(); ++it)
    data[it->first - addr] = it->second;
}

void Stub::apply_debug(std::optional<size_t> step_vcpu) {
  for (size_t i = 0; i < t_.vcpu_count(); ++i) {
    DebugState d;
    d.enabled = true;
    d.single_step = step_vcpu == i;
    d.sw_breakpoints = !sw_.empty();
    d.inject_bp = inject_bp_ && last_stop_.vcpu == i;
    for (int k = 0; k < 4; ++k) d.hw[k] = hw_[k];
    if (auto st = t_.set_debug(i, d); !st) {
      ++stats_.debug_errors;
      last_error_ = st.error().message;
    }
  }
}

}  // namespace qvm::gdb
