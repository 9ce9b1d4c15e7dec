/* MSRs KVM does not know (spec §3.14 `unsupported register`), read and written from ring 0:
 *   msr_unknown   rdmsr and wrmsr of MSR 0x12345678 (in no CPU's list). msr_expect=gp (default:
 *                 KVM's own answer, QEMU's, and qvm's `unsupported register fail`): both raise
 *                 #GP; msr_expect=zero (qvm `unsupported register ignore`): the read gives 0 and
 *                 the write is accepted. A known MSR (IA32_APIC_BASE) reads without a fault
 *                 either way. */
#include "guest.h"

#define MSR_UNKNOWN 0x12345678u
#define MSR_APIC_BASE 0x1bu

static void test_msr_unknown(void)
{
    const char *want = cmdline_get("msr_expect");
    bool zero = want && !strncmp(want, "zero", 4);
    bool f_known, f_rd, f_wr;
    uint64_t apic = msr_read(MSR_APIC_BASE, &f_known);
    uint64_t v = msr_read(MSR_UNKNOWN, &f_rd);
    f_wr = msr_write(MSR_UNKNOWN, 0x5a5a5a5a5a5a5a5aull);
    if (f_known || (apic & 0xfffff000u) != 0xfee00000u)
        return test_fail("IA32_APIC_BASE: fault=%d value=%lx", f_known, apic);
    if (zero) {
        if (f_rd || v != 0 || f_wr)
            return test_fail("unknown MSR with 'ignore': read fault=%d value=%lx, write fault=%d", f_rd, v, f_wr);
        return test_pass("rdmsr 0x%x read 0, wrmsr accepted (ignore)", MSR_UNKNOWN);
    }
    if (!f_rd || !f_wr) return test_fail("unknown MSR: read fault=%d (value %lx), write fault=%d; expected #GP", f_rd, v, f_wr);
    test_pass("rdmsr and wrmsr 0x%x raised #GP", MSR_UNKNOWN);
}
GUEST_TEST(msr_unknown, test_msr_unknown, TEST_NORMAL, "an MSR nobody knows: #GP, or 0 with 'unsupported register ignore'");
