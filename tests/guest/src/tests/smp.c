/* SMP bring-up: INIT / SIPI / SIPI to every other enabled LAPIC in the MADT, with the real-mode
 * trampoline copied to TRAMPOLINE_ADDR; each AP goes to long mode, records its APIC ID and halts.
 * Expects cpus=N on the command line (defaults to the MADT count). */
#include "guest.h"

extern char ap_trampoline[], ap_trampoline_end[];

static bool icr_idle(void) { return !(lapic_read(LAPIC_ICR_LO) & (1u << 12)); }

static bool send_ipi(uint32_t apic_id, uint32_t lo)
{
    lapic_write(LAPIC_ESR, 0);
    lapic_write(LAPIC_ICR_HI, apic_id << 24);
    lapic_write(LAPIC_ICR_LO, lo);
    return WAIT_US(icr_idle(), 100000);
}

static void test_smp(void)
{
    struct madt_info mi;
    if (!madt_parse(&mi)) return test_fail("no MADT");
    uint64_t want = mi.cpus;
    cmdline_u64("cpus", &want);
    if (mi.cpus > MAX_CPUS) return test_fail("%u CPUs > MAX_CPUS %u", mi.cpus, MAX_CPUS);
    uint32_t bsp = lapic_id();
    memcpy((void *)(uintptr_t)TRAMPOLINE_ADDR, ap_trampoline, (size_t)(ap_trampoline_end - ap_trampoline));
    unsigned sent = 0;
    for (unsigned i = 0; i < mi.cpus; i++) {
        uint32_t id = mi.apic_ids[i];
        if (id == bsp) continue;
        uint32_t before = ap_started;
        if (!send_ipi(id, 0x4500)) return test_fail("INIT to APIC %u not delivered", id); /* INIT, assert */
        udelay(10000);
        for (int s = 0; s < 2 && ap_started == before; s++) {
            if (!send_ipi(id, 0x4600 | (TRAMPOLINE_ADDR >> 12))) return test_fail("SIPI to APIC %u not delivered", id);
            WAIT_US(ap_started != before, s ? 500000 : 1000);
        }
        if (ap_started == before) return test_fail("AP with APIC ID %u did not report in", id);
        sent++;
    }
    unsigned total = ap_started + 1;
    char ids[64];
    size_t l = (size_t)snprintf(ids, sizeof ids, "%u", bsp);
    for (unsigned i = 0; i < ap_started && i < MAX_CPUS && l < sizeof ids - 4; i++)
        l += (size_t)snprintf(ids + l, sizeof ids - l, ",%u", ap_apic_ids[i]);
    if (total != want) return test_fail("%u CPUs running (apic ids %s), expected cpus=%lu", total, ids, want);
    for (unsigned i = 0; i < ap_started; i++)
        for (unsigned j = 0; j < i; j++)
            if (ap_apic_ids[i] == ap_apic_ids[j] || ap_apic_ids[i] == bsp) return test_fail("duplicate APIC IDs %s", ids);
    test_pass("cpus=%u apic_ids=%s", total, ids);
}
GUEST_TEST(smp, test_smp, TEST_NORMAL, "INIT/SIPI bring-up of every vCPU");
