/* Tests of the 16550 UART on COM1 (0x3f8, ISA IRQ 4 routed through the IOAPIC).
 *   serial     registers (LSR, scratch, IER/IIR) and the THR-empty (tx) interrupt
 *   serial_rx  receive interrupt: prints "INPUT serial_rx <token>"; the runner then writes
 *              "<token>\n" to the VMM's serial input; the guest checks it byte for byte. */
#include "guest.h"

#define IRQ_COM1 4
static volatile uint32_t tx_irqs, rx_bytes;
static volatile char rx_buf[64];

/* ring 0 handler: acknowledge by reading IIR; drain RBR while data is ready (bounded) */
static void com1_irq(unsigned vec)
{
    (void)vec;
    for (int i = 0; i < 32; i++) {
        uint8_t iir = inb(COM1 + 2);
        if (iir & 1) break;
        if ((iir & 0x0e) == 0x02) tx_irqs++;
        else if ((iir & 0x0e) == 0x04 || (iir & 0x0e) == 0x0c) {
            for (int j = 0; j < 16 && (inb(COM1 + 5) & 1); j++) {
                char c = (char)inb(COM1);
                if (rx_bytes < sizeof rx_buf) rx_buf[rx_bytes] = c;
                rx_bytes++;
            }
        } else if ((iir & 0x0e) == 0x06) (void)inb(COM1 + 5);
        else (void)inb(COM1 + 6);
    }
}

static bool com1_route(void)
{
    irq_set_handler(VEC_ISA_BASE + IRQ_COM1, com1_irq, EOI_LAPIC);
    return ioapic_route_isa(IRQ_COM1, false);
}

static void com1_quiet(void)
{
    outb(COM1 + 1, 0);
    ioapic_mask_isa(IRQ_COM1);
}

static void test_serial(void)
{
    uint8_t lsr = inb(COM1 + 5);
    if ((lsr & 0x60) != 0x60) return test_fail("LSR=%x: THRE/TEMT not set when idle", lsr);
    outb(COM1 + 7, 0x5a);
    uint8_t scr = inb(COM1 + 7);
    outb(COM1 + 7, 0xa5);
    uint8_t scr2 = inb(COM1 + 7);
    if (scr != 0x5a || scr2 != 0xa5) return test_fail("scratch register read %x/%x", scr, scr2);
    uint8_t lcr = inb(COM1 + 3);
    if (lcr != 0x03) return test_fail("LCR=%x, expected 0x03 (8N1)", lcr);
    outb(COM1 + 3, 0x83); /* DLAB: divisor latch readback */
    uint8_t dll = inb(COM1), dlm = inb(COM1 + 1);
    outb(COM1 + 3, 0x03);
    if (dll != 1 || dlm != 0) return test_fail("divisor latch %x:%x, expected 00:01", dlm, dll);
    uint8_t iir = inb(COM1 + 2);
    if ((iir & 0xc0) != 0xc0) return test_fail("IIR=%x: FIFO not reported enabled", iir);
    if (!com1_route()) return test_fail("cannot route IRQ 4 through the IOAPIC");
    uint32_t before = tx_irqs;
    outb(COM1 + 1, 0x02); /* ETBEI: THR is empty, so an interrupt is due right away */
    bool got = WAIT_US(tx_irqs != before, 500000);
    uint32_t n1 = tx_irqs;
    /* a second transmit must raise it again once the FIFO drains */
    outb(COM1, '.');
    outb(COM1, '\n');
    bool got2 = WAIT_US(tx_irqs > n1, 500000);
    com1_quiet();
    if (!got) return test_fail("no THR-empty interrupt within 500 ms of setting IER.ETBEI");
    if (!got2) return test_fail("no THR-empty interrupt after transmitting");
    test_pass("lsr=%x scr ok dll ok tx_irqs=%u", lsr, tx_irqs);
}
GUEST_TEST(serial, test_serial, TEST_NORMAL, "16550 registers and tx interrupt");

static const char rx_token[] = "qvm-rx-0123456789-abcdefghij";

static void test_serial_rx(void)
{
    size_t tl = sizeof rx_token - 1;
    if (!com1_route()) return test_fail("cannot route IRQ 4 through the IOAPIC");
    while (inb(COM1 + 5) & 1) (void)inb(COM1); /* discard stale input */
    rx_bytes = 0;
    uint32_t irqs0 = irq_count[VEC_ISA_BASE + IRQ_COM1];
    outb(COM1 + 1, 0x01); /* ERBFI */
    printk("INPUT serial_rx %s\n", rx_token);
    bool ok = WAIT_US(rx_bytes >= tl + 1, 10000000);
    com1_quiet();
    uint32_t irqs = irq_count[VEC_ISA_BASE + IRQ_COM1] - irqs0;
    if (!ok) return test_fail("received %u of %u bytes within 10 s (irqs=%u)", rx_bytes, (unsigned)tl + 1, irqs);
    char got[sizeof rx_buf + 1];
    size_t n = rx_bytes < sizeof rx_buf ? rx_bytes : sizeof rx_buf;
    for (size_t i = 0; i < n; i++) got[i] = rx_buf[i];
    got[n] = 0;
    if (memcmp(got, rx_token, tl) || (got[tl] != '\n' && got[tl] != '\r'))
        return test_fail("received \"%s\"", got);
    if (irqs == 0) return test_fail("data arrived but no rx interrupt was counted");
    test_pass("bytes=%u irqs=%u", rx_bytes, irqs);
}
GUEST_TEST(serial_rx, test_serial_rx, TEST_NORMAL, "16550 receive interrupt (runner feeds input)");
