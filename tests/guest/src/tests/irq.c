/* Interrupt controller tests.
 *   pic     8259 delivery: PIT IRQ 0 through the master PIC (LAPIC LINT0 in ExtINT mode), IOAPIC
 *           pin masked; checks IMR readback, that interrupts arrive and stop when masked
 *   ioapic  version/redirection-entry registers and edge delivery of PIT IRQ 0 through it */
#include "guest.h"

static void test_pic(void)
{
    pic_init();
    pic_set_mask(0xa5c3);
    uint8_t m1 = inb(0x21), m2 = inb(0xa1);
    if (m1 != 0xc3 || m2 != 0xa5) return test_fail("IMR readback %x/%x, expected c3/a5", m1, m2);
    const unsigned vec = VEC_PIC_BASE + 0;
    irq_set_handler(vec, NULL, EOI_PIC_MASTER);
    ioapic_mask_isa(0);
    lapic_write(LAPIC_LVT_LINT0, 0x700); /* ExtINT, unmasked */
    pic_set_mask(0xfffe);
    pit_start(1000);
    bool got = WAIT_US(irq_count[vec] >= 10, 500000);
    pic_set_mask(0xffff);
    udelay(20000);
    uint32_t c0 = irq_count[vec];
    udelay(50000);
    uint32_t c1 = irq_count[vec];
    pit_stop();
    lapic_write(LAPIC_LVT_LINT0, 1u << 16);
    if (!got) return test_fail("only %u IRQ 0 via the 8259 in 500 ms", irq_count[vec]);
    if (c1 != c0) return test_fail("%u interrupts arrived while masked in the IMR", c1 - c0);
    test_pass("irqs=%u masked ok", c0);
}
GUEST_TEST(pic, test_pic, TEST_NORMAL, "8259 delivery through LINT0 ExtINT, IMR masking");

static void test_ioapic(void)
{
    struct madt_info mi;
    bool have_madt = madt_parse(&mi);
    uint32_t id = ioapic_read(0), ver = ioapic_read(1);
    unsigned pins = ((ver >> 16) & 0xff) + 1;
    if ((ver & 0xff) < 0x11 || pins < 24) return test_fail("version register %x (pins %u)", ver, pins);
    /* redirection entry round trip on pin 23 (unused by ISA devices) */
    uint32_t lo0 = ioapic_read(0x10 + 2 * 23), hi0 = ioapic_read(0x11 + 2 * 23);
    ioapic_write(0x11 + 2 * 23, 0x01000000);
    ioapic_write(0x10 + 2 * 23, 0x0001a05a); /* masked, level, active low, vector 0x5a */
    uint32_t lo = ioapic_read(0x10 + 2 * 23), hi = ioapic_read(0x11 + 2 * 23);
    ioapic_write(0x10 + 2 * 23, lo0 | (1u << 16));
    ioapic_write(0x11 + 2 * 23, hi0);
    if ((lo & 0x1a0ff) != 0x1a05a || (hi >> 24) != 1) return test_fail("RTE readback %x:%x", hi, lo);
    /* edge delivery */
    const unsigned vec = VEC_ISA_BASE + 0;
    pic_set_mask(0xffff);
    irq_set_handler(vec, NULL, EOI_LAPIC);
    uint32_t c0 = irq_count[vec];
    if (!ioapic_route_isa(0, false)) return test_fail("cannot route ISA IRQ 0");
    pit_start(1000);
    bool got = WAIT_US(irq_count[vec] - c0 >= 10, 500000);
    ioapic_mask_isa(0);
    pit_stop();
    if (!got) return test_fail("only %u PIT interrupts through the IOAPIC in 500 ms", irq_count[vec] - c0);
    test_pass("id=%x ver=%x pins=%u madt_ioapics=%u", id >> 24, ver & 0xff, pins, have_madt ? mi.ioapics : 0);
}
GUEST_TEST(ioapic, test_ioapic, TEST_NORMAL, "IOAPIC registers and delivery");
