/* The HPET (IA-PC HPET Specification 1.0a), found through the ACPI HPET table:
 *   hpet_counter   GCAP_ID: revision, >= 3 timers, 64-bit counter, a period of 100 ns or less;
 *                  enabled, the main counter advances at that period (within 2 % of the TSC
 *                  over 100 ms); halted, it stands still and takes a written value
 *   hpet_oneshot   timer 2, edge, routed to the highest IOAPIC input 16-23 its route capability
 *                  offers: one interrupt about 10 ms after arming (not before 9 ms), none after
 *   hpet_periodic  timer 0 periodic every 2 ms (legacy routing off), routed likewise: 20-30
 *                  interrupts in 50 ms, none once disabled
 *   hpet_legacy    legacy replacement routing (GEN_CONF bit 1): timer 0 periodic every 2 ms
 *                  arrives as ISA IRQ 0, at the GSI the MADT maps IRQ 0 to (pin 2 with QEMU's
 *                  override, pin 0 under qvm's kit platform), while the PIT, programmed at
 *                  1 kHz on the same IRQ, stays silent (the HPET took IRQ 0 over): 20-30
 *                  interrupts in 50 ms, not ~75
 * Under QEMU q35 (its HPET) and qvm (vdev hpet: configs/kit-hpet.qvmconf). */
#include "guest.h"
#include "virtio.h"

#define CAP 0x000
#define CFG 0x010
#define ISR 0x020
#define CNT 0x0f0
#define TCFG(n) (0x100 + 0x20 * (n))
#define TCMP(n) (0x108 + 0x20 * (n))

static uint64_t hpet;
static volatile uint32_t hpet_irqs;

static uint64_t rd(uint32_t r) { return mmio_read32(hpet + r) | ((uint64_t)mmio_read32(hpet + r + 4) << 32); }
static void wr(uint32_t r, uint64_t v)
{
    mmio_write32(hpet + r, (uint32_t)v);
    mmio_write32(hpet + r + 4, (uint32_t)(v >> 32));
}

static bool hpet_find(void)
{
    const struct acpi_header *h = acpi_table("HPET", 0);
    if (!h || h->length < 52) return false;
    hpet = *(const uint64_t *)((const uint8_t *)h + 44); /* the GAS's address */
    return hpet != 0;
}

static void hpet_isr(unsigned vec)
{
    (void)vec;
    hpet_irqs++;
}

/* route timer n (edge) to the highest input 16-23 it may use; returns the GSI or -1 */
static int hpet_route(unsigned n)
{
    uint32_t cap = (uint32_t)(rd(TCFG(n)) >> 32);
    for (int g = 23; g >= 16; g--) {
        if (!(cap & (1u << g))) continue;
        uint64_t base;
        unsigned pin;
        if (!gsi_ioapic((uint32_t)g, &base, &pin)) return -1;
        irq_set_handler(VEC_HPET, hpet_isr, EOI_LAPIC);
        ioapic_rte(base, pin, VEC_HPET, lapic_id() << 24); /* edge, active high, unmasked */
        return g;
    }
    return -1;
}

static void hpet_unroute(int gsi)
{
    uint64_t base;
    unsigned pin;
    if (gsi >= 0 && gsi_ioapic((uint32_t)gsi, &base, &pin)) ioapic_rte(base, pin, VEC_HPET | (1u << 16), 0);
}

static void test_hpet_counter(void)
{
    if (!hpet_find()) return test_fail("no ACPI HPET table");
    uint64_t cap = rd(CAP);
    uint32_t period_fs = (uint32_t)(cap >> 32), ntimers = ((cap >> 8) & 0x1f) + 1;
    if ((cap & 0xff) == 0 || ntimers < 3 || !(cap & (1u << 13)) || period_fs == 0 || period_fs > 100000000)
        return test_fail("GCAP_ID %lx: revision, timers %u, 64-bit %d, period %u fs", cap, ntimers, (int)((cap >> 13) & 1), period_fs);
    wr(CFG, rd(CFG) & ~3ull); /* halted, legacy routing off */
    wr(CNT, 0x1234);
    uint64_t c0 = rd(CNT);
    udelay(1000);
    if (c0 != 0x1234 || rd(CNT) != 0x1234) return test_fail("halted counter: wrote 0x1234, read %lx then %lx", c0, rd(CNT));
    wr(CFG, rd(CFG) | 1);
    uint64_t t0 = rdtsc(), h0 = rd(CNT);
    udelay(100000);
    uint64_t t1 = rdtsc(), h1 = rd(CNT);
    uint64_t hpet_ns = (h1 - h0) * period_fs / 1000000, tsc_ns = (t1 - t0) * 1000000 / tsc_khz;
    if (hpet_ns * 100 < tsc_ns * 98 || hpet_ns * 100 > tsc_ns * 102)
        return test_fail("counter: %lu ns by the HPET, %lu ns by the TSC", hpet_ns, tsc_ns);
    test_pass("%u timers, period %u fs (%lu Hz); 100 ms: HPET %lu ns, TSC %lu ns", ntimers, period_fs,
              (uint64_t)(1000000000000000ull / period_fs), hpet_ns, tsc_ns);
}
GUEST_TEST(hpet_counter, test_hpet_counter, TEST_NORMAL, "HPET main counter: capabilities, rate, halt");

static void test_hpet_oneshot(void)
{
    if (!hpet_find()) return test_fail("no ACPI HPET table");
    uint32_t period_fs = (uint32_t)(rd(CAP) >> 32);
    wr(CFG, (rd(CFG) & ~2ull) | 1);
    int gsi = hpet_route(2);
    if (gsi < 0) return test_fail("timer 2 offers no IOAPIC input 16-23 (cap %lx)", rd(TCFG(2)) >> 32);
    uint64_t ticks = 10000000000000ull / period_fs; /* 10 ms */
    uint32_t c0 = hpet_irqs;
    wr(TCFG(2), (rd(TCFG(2)) & ~0x3f0eull) | ((uint64_t)gsi << 9)); /* edge, one-shot, 64-bit, off */
    wr(TCMP(2), rd(CNT) + ticks);
    uint64_t t0 = now_us();
    wr(TCFG(2), rd(TCFG(2)) | (1u << 2)); /* enable the interrupt */
    bool got = WAIT_US(hpet_irqs != c0, 1000000);
    uint64_t dt = now_us() - t0;
    udelay(30000);
    uint32_t n = hpet_irqs - c0;
    wr(TCFG(2), rd(TCFG(2)) & ~(1ull << 2));
    hpet_unroute(gsi);
    if (!got) return test_fail("no interrupt on GSI %d within 1 s of a 10 ms one-shot", gsi);
    if (dt < 9000) return test_fail("interrupt after %lu us, armed for 10 ms", dt);
    if (n != 1) return test_fail("%u interrupts for one one-shot comparator", n);
    test_pass("GSI %d: one interrupt %lu us after arming 10 ms", gsi, dt);
}
GUEST_TEST(hpet_oneshot, test_hpet_oneshot, TEST_NORMAL, "HPET timer 2 one-shot 10 ms on an IOAPIC input");

static void test_hpet_periodic(void)
{
    if (!hpet_find()) return test_fail("no ACPI HPET table");
    uint32_t period_fs = (uint32_t)(rd(CAP) >> 32);
    if (!(rd(TCFG(0)) & (1u << 4))) return test_fail("timer 0 is not periodic-capable");
    wr(CFG, rd(CFG) & ~3ull); /* halt while setting up, legacy routing off */
    int gsi = hpet_route(0);
    if (gsi < 0) return test_fail("timer 0 offers no IOAPIC input 16-23");
    uint64_t ticks = 2000000000000ull / period_fs; /* 2 ms */
    wr(TCFG(0), (rd(TCFG(0)) & ~0x3f0eull) | ((uint64_t)gsi << 9) | (1u << 3) | (1u << 6)); /* periodic, VAL_SET */
    wr(TCMP(0), rd(CNT) + ticks);
    wr(TCMP(0), ticks); /* the period */
    uint32_t c0 = hpet_irqs;
    wr(TCFG(0), rd(TCFG(0)) | (1u << 2));
    wr(CFG, rd(CFG) | 1);
    udelay(50000);
    uint32_t n = hpet_irqs - c0;
    wr(TCFG(0), rd(TCFG(0)) & ~(1ull << 2));
    udelay(10000);
    uint32_t after = hpet_irqs - c0 - n;
    hpet_unroute(gsi);
    if (n < 20 || n > 30) return test_fail("%u interrupts in 50 ms at a 2 ms period (GSI %d)", n, gsi);
    if (after > 1) return test_fail("%u interrupts after the interrupt was disabled", after);
    test_pass("GSI %d: %u interrupts in 50 ms at a 2 ms period", gsi, n);
}
GUEST_TEST(hpet_periodic, test_hpet_periodic, TEST_NORMAL, "HPET timer 0 periodic 2 ms on an IOAPIC input");

static void test_hpet_legacy(void)
{
    if (!hpet_find()) return test_fail("no ACPI HPET table");
    uint64_t cap = rd(CAP);
    if (!(cap & (1u << 15))) return test_fail("GCAP_ID %lx: no legacy replacement capability", cap);
    uint32_t period_fs = (uint32_t)(cap >> 32);
    unsigned gsi = isa_irq_to_gsi(0, NULL);
    uint64_t base;
    unsigned pin;
    if (!gsi_ioapic(gsi, &base, &pin)) return test_fail("IRQ 0 (GSI %u) is on no IOAPIC", gsi);
    wr(CFG, rd(CFG) & ~3ull); /* halt while setting up */
    pit_start(1000);          /* IRQ 0's other source: must be cut off in legacy replacement */
    irq_set_handler(VEC_HPET, hpet_isr, EOI_LAPIC);
    ioapic_rte(base, pin, VEC_HPET, lapic_id() << 24); /* edge, active high */
    uint64_t ticks = 2000000000000ull / period_fs;     /* 2 ms */
    wr(TCFG(0), (rd(TCFG(0)) & ~0x3f0eull) | (1u << 3) | (1u << 6)); /* periodic, VAL_SET */
    wr(TCMP(0), rd(CNT) + ticks);
    wr(TCMP(0), ticks);
    wr(TCFG(0), rd(TCFG(0)) | (1u << 2));
    uint32_t c0 = hpet_irqs;
    wr(CFG, rd(CFG) | 3); /* enable, legacy replacement */
    udelay(50000);
    uint32_t n = hpet_irqs - c0;
    wr(CFG, rd(CFG) & ~3ull); /* halt; IRQ 0 back to the PIT */
    wr(TCFG(0), rd(TCFG(0)) & ~(1ull << 2));
    ioapic_rte(base, pin, VEC_HPET | (1u << 16), 0);
    pit_stop();
    if (n < 20 || n > 30)
        return test_fail("%u interrupts on IRQ 0 (GSI %u) in 50 ms: want 20-30 from the HPET alone "
                         "(the PIT at 1 kHz adds ~50)", n, gsi);
    test_pass("IRQ 0 = GSI %u: %u interrupts in 50 ms at a 2 ms period, the PIT silent", gsi, n);
}
GUEST_TEST(hpet_legacy, test_hpet_legacy, TEST_NORMAL,
           "HPET legacy replacement: timer 0 on IRQ 0's GSI, the PIT cut off");
