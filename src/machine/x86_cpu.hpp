// x86 vCPU set-up: CPUID as this VM presents it, and the boot vCPU's registers from a BootPlan.
#pragma once

#include <linux/kvm.h>

#include <string>
#include <vector>

#include "arch/x86/loader.hpp"
#include "base/result.hpp"
#include "kvm/vcpu.hpp"

namespace qvm::machine {

// The host's supported CPUID with this vCPU's APIC id (leaf 1 EBX[31:24], leaves 0xb/0x1f EDX),
// the logical processor count, and the hypervisor bit (leaf 1 ECX[31]).
std::vector<kvm_cpuid_entry2> cpuid_for_vcpu(std::vector<kvm_cpuid_entry2> entries, uint32_t id,
                                             uint32_t count);

// The vCPU's state in one line, for a stop the guest caused (a triple fault): where it was and
// the tables it ran on, so a crash can be placed without a debugger.
std::string describe_cpu_state(const kvm::Vcpu& vcpu);

// Registers for BootPlan::mode as documented in arch/x86/loader.hpp.
Status setup_boot_vcpu(kvm::Vcpu& vcpu, const arch::x86::BootPlan& plan);

}  // namespace qvm::machine
