/* Timer tests.
 *   pit          PIT channel 0 at 1 kHz (mode 2) through IOAPIC (ISA IRQ 0, MADT override):
 *                interrupt count over a 200 ms TSC window within 50..150 % of the expected
 *   rtc          CMOS date/time sane (and within 10 min of now=<unix seconds> if given);
 *                periodic interrupt (reg A rate 9 = 128 Hz, reg B.PIE) on ISA IRQ 8
 *   lapic_timer  LAPIC timer periodic mode: current count decrements, interrupts arrive */
#include "guest.h"

static void test_pit(void)
{
    const unsigned vec = VEC_ISA_BASE + 0;
    irq_set_handler(vec, NULL, EOI_LAPIC);
    if (!ioapic_route_isa(0, false)) return test_fail("cannot route ISA IRQ 0");
    pit_start(1000);
    /* let the first tick arrive, then count over a fixed window */
    bool first = WAIT_US(irq_count[vec] > 0, 200000);
    uint32_t c0 = irq_count[vec];
    uint64_t t0 = now_us();
    udelay(200000);
    uint32_t c1 = irq_count[vec];
    uint64_t dt = now_us() - t0;
    pit_stop();
    ioapic_mask_isa(0);
    uint16_t fl;
    unsigned gsi = isa_irq_to_gsi(0, &fl);
    if (!first) return test_fail("no IRQ 0 within 200 ms (gsi %u)", gsi);
    uint64_t expect = dt / 1000; /* 1 kHz */
    uint32_t got = c1 - c0;
    if (got * 2 < expect || got * 2 > expect * 3)
        return test_fail("%u ticks in %lu us, expected ~%lu (gsi %u, tsc %s)", got, dt, expect, gsi, tsc_source);
    test_pass("%u ticks in %lu us (gsi %u)", got, dt, gsi);
}
GUEST_TEST(pit, test_pit, TEST_NORMAL, "PIT channel 0 periodic interrupt rate");

static uint8_t cmos_read(uint8_t reg)
{
    outb(0x70, reg);
    return inb(0x71);
}
static void cmos_write(uint8_t reg, uint8_t v)
{
    outb(0x70, reg);
    outb(0x71, v);
}
static unsigned bcd(uint8_t v, bool binary) { return binary ? v : (unsigned)((v >> 4) * 10 + (v & 0xf)); }

/* days since 1970-01-01 (civil calendar) */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void rtc_irq(unsigned vec)
{
    (void)vec;
    outb(0x70, 0x0c);
    (void)inb(0x71); /* reading C acknowledges */
}

static void test_rtc(void)
{
    /* wait for a moment outside an update cycle */
    if (!WAIT_US(!(cmos_read(0x0a) & 0x80), 1100000)) return test_fail("UIP stuck set for 1.1 s");
    uint8_t s = cmos_read(0), mi = cmos_read(2), h = cmos_read(4), d = cmos_read(7), mo = cmos_read(8),
            y = cmos_read(9), cen = cmos_read(0x32), b = cmos_read(0x0b);
    bool bin = b & 0x04, h24 = b & 0x02;
    unsigned sec = bcd(s, bin), min = bcd(mi, bin), hour = bcd(h & 0x7f, bin), day = bcd(d, bin),
             mon = bcd(mo, bin), year = bcd(y, bin), century = bcd(cen, bin);
    if (!h24) hour = (hour % 12) + ((h & 0x80) ? 12 : 0);
    if (century < 19 || century > 21) century = 20;
    year += century * 100;
    if (sec > 59 || min > 59 || hour > 23 || day < 1 || day > 31 || mon < 1 || mon > 12 || year < 2000 ||
        year > 2199)
        return test_fail("insane date %u-%u-%u %u:%u:%u (regB %x)", year, mon, day, hour, min, sec, b);
    int64_t rtc_epoch = days_from_civil(year, mon, day) * 86400 + hour * 3600 + min * 60 + sec;
    uint64_t now;
    int64_t skew = 0;
    if (cmdline_u64("now", &now)) {
        skew = rtc_epoch - (int64_t)now;
        if (skew < -600 || skew > 600)
            return test_fail("RTC %u-%02u-%02u %02u:%02u:%02u is %ld s from host time", year, mon, day, hour, min,
                             sec, skew);
    }

    /* periodic interrupt */
    const unsigned vec = VEC_ISA_BASE + 8;
    irq_set_handler(vec, rtc_irq, EOI_LAPIC);
    if (!ioapic_route_isa(8, false)) return test_fail("cannot route ISA IRQ 8");
    uint8_t a = cmos_read(0x0a);
    cmos_write(0x0a, (uint8_t)((a & 0xf0) | 0x09)); /* 128 Hz */
    (void)cmos_read(0x0c);
    cmos_write(0x0b, (uint8_t)(b | 0x40));
    bool first = WAIT_US(irq_count[vec] > 0, 500000);
    uint32_t c0 = irq_count[vec];
    uint64_t t0 = now_us();
    udelay(250000);
    uint32_t c1 = irq_count[vec];
    uint64_t dt = now_us() - t0;
    cmos_write(0x0b, (uint8_t)(b & ~0x40));
    cmos_write(0x0a, a);
    (void)cmos_read(0x0c);
    ioapic_mask_isa(8);
    if (!first) return test_fail("no periodic IRQ 8 within 500 ms");
    uint64_t expect = dt * 128 / 1000000;
    uint32_t got = c1 - c0;
    if (got * 2 < expect || got * 2 > expect * 3)
        return test_fail("%u periodic irqs in %lu us, expected ~%lu", got, dt, expect);
    test_pass("%u-%02u-%02u %02u:%02u:%02u skew=%lds periodic=%u/%lu", year, mon, day, hour, min, sec, skew, got,
              expect);
}
GUEST_TEST(rtc, test_rtc, TEST_NORMAL, "MC146818 date/time and periodic interrupt");

static void test_lapic_timer(void)
{
    const unsigned vec = VEC_LAPIC_TIMER;
    uint32_t ver = lapic_read(LAPIC_VER);
    if ((ver & 0xff) < 0x10 || ((ver >> 16) & 0xff) < 3)
        return test_fail("LAPIC version register %x implausible", ver);
    irq_set_handler(vec, NULL, EOI_LAPIC);
    lapic_write(LAPIC_TIMER_DIV, 0x3); /* divide by 16 */
    lapic_write(LAPIC_LVT_TIMER, (1u << 17) | vec); /* periodic */
    lapic_write(LAPIC_TIMER_INIT, 100000);
    uint32_t cur1 = lapic_read(LAPIC_TIMER_CUR);
    udelay(100);
    uint32_t cur2 = lapic_read(LAPIC_TIMER_CUR);
    bool first = WAIT_US(irq_count[vec] > 0, 500000);
    uint32_t c0 = irq_count[vec];
    udelay(100000);
    uint32_t c1 = irq_count[vec];
    lapic_write(LAPIC_LVT_TIMER, 1u << 16);
    lapic_write(LAPIC_TIMER_INIT, 0);
    if (cur1 == 0 || cur1 > 100000 || cur1 == cur2) return test_fail("current count not running (%u, %u)", cur1, cur2);
    if (!first) return test_fail("no LAPIC timer interrupt within 500 ms");
    if (c1 - c0 < 2) return test_fail("only %u periodic interrupts in 100 ms", c1 - c0);
    test_pass("ver=%x ticks_in_100ms=%u", ver, c1 - c0);
}
GUEST_TEST(lapic_timer, test_lapic_timer, TEST_NORMAL, "LAPIC timer periodic interrupt");
