#include "machine/x86_cpu.hpp"

#include "base/log.hpp"

namespace qvm::machine {
namespace {

kvm_segment flat(uint16_t selector, bool code, bool long_mode) {
  kvm_segment s{};
  s.base = 0;
  s.limit = 0xffffffff;
  s.selector = selector;
  s.type = code ? 0xb : 0x3;
  s.present = 1;
  s.dpl = 0;
  s.db = long_mode ? 0 : 1;
  s.s = 1;
  s.l = long_mode ? 1 : 0;
  s.g = 1;
  return s;
}

}  // namespace

std::vector<kvm_cpuid_entry2> cpuid_for_vcpu(std::vector<kvm_cpuid_entry2> entries, uint32_t id,
                                             uint32_t count) {
  for (auto& e : entries) {
    switch (e.function) {
      case 1:
        e.ebx = (e.ebx & 0x0000ffffu) | ((count & 0xffu) << 16) | (id << 24);
        e.ecx |= 1u << 31;                 // running under a hypervisor
        if (count > 1) e.edx |= 1u << 28;  // HTT: the count field is valid
        break;
      case 0xb:
      case 0x1f:
        e.edx = id;
        break;
      default:
        break;
    }
  }
  return entries;
}

Status setup_boot_vcpu(kvm::Vcpu& vcpu, const arch::x86::BootPlan& plan) {
  namespace x86 = arch::x86;
  kvm_sregs s = QVM_TRY(vcpu.sregs());
  bool lm = plan.mode == x86::BootPlan::Mode::kElf64;
  s.cs = flat(lm ? x86::kCode64Selector : x86::kCode32Selector, true, lm);
  s.ds = s.es = s.fs = s.gs = s.ss = flat(x86::kDataSelector, false, false);
  s.gdt.base = plan.gdt_base;
  s.gdt.limit = plan.gdt_limit;
  s.idt.base = 0;
  s.idt.limit = 0;
  s.tr = kvm_segment{};
  s.tr.limit = 0x67;
  s.tr.type = 11;
  s.tr.present = 1;
  s.ldt = kvm_segment{};
  s.ldt.unusable = 1;
  s.cr0 = 0x11;  // PE | ET
  s.cr4 = 0;
  s.efer = 0;
  if (lm) {
    s.cr0 |= 0x80000000u;  // PG
    s.cr4 = 0x20;          // PAE
    s.efer = 0x500;        // LME | LMA
    s.cr3 = plan.cr3;
  }
  QVM_TRY(vcpu.set_sregs(s));
  kvm_regs r{};
  r.rflags = 0x2;
  r.rip = plan.entry;
  r.rax = plan.rax;
  r.rbx = plan.rbx;
  r.rsi = plan.rsi;
  return vcpu.set_regs(r);
}

std::string describe_cpu_state(const kvm::Vcpu& vcpu) {
  auto r = vcpu.regs();
  auto s = vcpu.sregs();
  if (!r || !s) return "registers unavailable";
  using ull = unsigned long long;
  return strprintf(
      "rip 0x%llx rsp 0x%llx rflags 0x%llx cs 0x%x ss 0x%x cr0 0x%llx cr2 0x%llx cr3 0x%llx "
      "cr4 0x%llx efer 0x%llx idt 0x%llx+0x%x gdt 0x%llx+0x%x tr 0x%x",
      static_cast<ull>(r->rip), static_cast<ull>(r->rsp), static_cast<ull>(r->rflags),
      s->cs.selector, s->ss.selector, static_cast<ull>(s->cr0), static_cast<ull>(s->cr2),
      static_cast<ull>(s->cr3), static_cast<ull>(s->cr4), static_cast<ull>(s->efer),
      static_cast<ull>(s->idt.base), s->idt.limit, static_cast<ull>(s->gdt.base), s->gdt.limit,
      s->tr.selector);
}

}  // namespace qvm::machine
