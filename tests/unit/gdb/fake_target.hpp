// A gdb::Target without KVM for the stub's unit tests and fuzz target: identity-mapped memory at
// [kBase, kBase + kSize), registers per vCPU, and a record of what the stub asked for.
#pragma once

#include <algorithm>
#include <cstring>
#include <vector>

#include "gdb/target.hpp"

namespace qvm::gdb::testing {

class FakeTarget : public Target {
 public:
  static constexpr uint64_t kBase = 0x100000, kSize = 0x10000;
  explicit FakeTarget(size_t vcpus = 2) : regs(vcpus), debug(vcpus), mem(kSize) {
    for (auto& r : regs) {
      r.seg[0] = 0x10;  // ring 0
      r.efer = 1u << 10;
      r.gpr[7] = kBase + 0x8000;  // rsp
    }
  }
  DebugLimits limits() const override { return lim; }
  size_t vcpu_count() const override { return regs.size(); }
  Arch arch(size_t v) override { return (regs[v].efer & (1u << 10)) ? Arch::kX86_64 : Arch::kI386; }
  Result<X86State> read_registers(size_t v) override { return regs[v]; }
  Status write_registers(size_t v, const X86State& s) override {
    regs[v] = s;
    return {};
  }
  Result<IdtInfo> idt(size_t) override { return idt_info; }
  size_t read_memory(size_t, uint64_t addr, std::span<uint8_t> out) override {
    if (addr < kBase || addr >= kBase + kSize) return 0;
    size_t n = std::min<uint64_t>(out.size(), kBase + kSize - addr);
    std::memcpy(out.data(), mem.data() + (addr - kBase), n);
    return n;
  }
  size_t write_memory(size_t, uint64_t addr, std::span<const uint8_t> in) override {
    if (addr < kBase || addr >= kBase + kSize) return 0;
    size_t n = std::min<uint64_t>(in.size(), kBase + kSize - addr);
    std::memcpy(mem.data() + (addr - kBase), in.data(), n);
    return n;
  }
  void set_physical(bool p) override { physical = p; }
  Status set_debug(size_t v, const DebugState& d) override {
    debug[v] = d;
    return {};
  }
  void stop_all() override {
    ++stops;
    running.clear();
  }
  void resume(std::span<const size_t> v) override { running.assign(v.begin(), v.end()); }
  void kill() override { killed = true; }

  uint8_t& at(uint64_t addr) { return mem[addr - kBase]; }

  DebugLimits lim;
  std::vector<X86State> regs;
  std::vector<DebugState> debug;
  std::vector<uint8_t> mem;
  IdtInfo idt_info{kBase + 0x1000, 0xfff, true, true};
  std::vector<size_t> running;
  int stops = 0;
  bool killed = false;
  bool physical = false;
};

}  // namespace qvm::gdb::testing
