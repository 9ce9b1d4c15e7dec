/* The sample loadable vdev examples/vdev/regbank (qvm only: docs/vdev-api.md). Expectations from
 * the runner's device set: regbank=ADDR (memory instance, with an interrupt on regbank_gsi=N and
 * `id` regbank_id=X) and regbank_io=PORT (port instance, default id).
 *   vdev_regbank  ID and SCRATCH on both instances, a 2-byte access is a bus error (all ones),
 *                 the one-shot timer: one level interrupt ~20 ms after arming, STATUS cleared by
 *                 the handler deasserts it (no interrupt after the first 10 ms), COUNT and
 *                 ELAPSED_US agree; WINDOW adds a region at run time (gasp_region_set_soft):
 *                 it mirrors ID where it is, moves, and reads all ones (unclaimed) once gone
 * No QEMU counterpart: the device exists only as this sample; each check has a failing outcome. */
#include "guest.h"
#include "virtio.h"

#define RB_ID 0x00
#define RB_SCRATCH 0x04
#define RB_TIMER_US 0x08
#define RB_STATUS 0x0c
#define RB_COUNT 0x10
#define RB_ELAPSED_US 0x14
#define RB_WINDOW 0x18
#define RB_DEFAULT_ID 0x51564d52u

static volatile uint64_t rb_base;
static volatile uint32_t rb_irqs, rb_status_first;

static void rb_isr(unsigned vec)
{
    (void)vec;
    uint32_t st = mmio_read32(rb_base + RB_STATUS);
    if (rb_irqs == 0) rb_status_first = st;
    mmio_write32(rb_base + RB_STATUS, 1); /* clear: the device deasserts its line */
    rb_irqs++;
}

static void test_vdev_regbank(void)
{
    uint64_t base, port, gsi, id;
    if (!cmdline_u64("regbank", &base) || !cmdline_u64("regbank_io", &port) || !cmdline_u64("regbank_gsi", &gsi) ||
        !cmdline_u64("regbank_id", &id))
        return test_fail("regbank, regbank_io, regbank_gsi and regbank_id are needed on the command line");
    uint32_t mid = mmio_read32(base + RB_ID), pid = inl((uint16_t)(port + RB_ID));
    if (mid != (uint32_t)id) return test_fail("memory instance ID %08x, expected %08x (the `id` option)", mid, (uint32_t)id);
    if (pid != RB_DEFAULT_ID) return test_fail("port instance ID %08x, expected the default %08x", pid, RB_DEFAULT_ID);
    mmio_write32(base + RB_SCRATCH, 0xa5a5f00d);
    outl((uint16_t)(port + RB_SCRATCH), 0x12345678);
    uint32_t ms = mmio_read32(base + RB_SCRATCH), ps = inl((uint16_t)(port + RB_SCRATCH));
    if (ms != 0xa5a5f00d || ps != 0x12345678)
        return test_fail("SCRATCH read back %08x / %08x (instances must not share state)", ms, ps);
    uint16_t narrow = mmio_read16(base + RB_ID);
    if (narrow != 0xffff) return test_fail("a 2-byte read returned %04x: acc_sizes allows 4-byte accesses only", narrow);
    const uint64_t w1 = 0xd0010000, w2 = 0xd0020000;
    uint32_t before = mmio_read32(w1);
    mmio_write32(base + RB_WINDOW, (uint32_t)w1);
    uint32_t at1 = mmio_read32(w1), reg = mmio_read32(base + RB_WINDOW);
    mmio_write32(base + RB_WINDOW, (uint32_t)w2);
    uint32_t gone1 = mmio_read32(w1), at2 = mmio_read32(w2);
    mmio_write32(base + RB_WINDOW, 0);
    uint32_t gone2 = mmio_read32(w2);
    if (before != 0xffffffff) return test_fail("%lx reads %08x before the window exists", w1, before);
    if (at1 != (uint32_t)id || reg != (uint32_t)w1)
        return test_fail("window at %lx reads %08x (WINDOW %08x), expected the ID %08x", w1, at1, reg, (uint32_t)id);
    if (gone1 != 0xffffffff || at2 != (uint32_t)id)
        return test_fail("after the move: old %lx reads %08x, new %lx reads %08x", w1, gone1, w2, at2);
    if (gone2 != 0xffffffff) return test_fail("the removed window at %lx still reads %08x", w2, gone2);

    uint64_t abase;
    unsigned pin;
    if (!gsi_ioapic((uint32_t)gsi, &abase, &pin)) return test_fail("GSI %lu on no IOAPIC", gsi);
    rb_base = base;
    rb_irqs = 0;
    irq_set_handler(VEC_REGBANK, rb_isr, EOI_LAPIC);
    ioapic_rte(abase, pin, VEC_REGBANK | (1u << 15), lapic_id() << 24); /* level, active high */
    uint32_t c0 = mmio_read32(base + RB_COUNT);
    uint64_t t0 = now_us();
    mmio_write32(base + RB_TIMER_US, 20000);
    bool got = WAIT_US(rb_irqs > 0, 2000000);
    uint64_t t = now_us() - t0;
    udelay(10000);
    uint32_t early = rb_irqs, first_status = rb_status_first;
    udelay(30000); /* a line left asserted would interrupt again after each EOI */
    uint32_t irqs = rb_irqs, count = mmio_read32(base + RB_COUNT) - c0;
    uint32_t elapsed = mmio_read32(base + RB_ELAPSED_US), status = mmio_read32(base + RB_STATUS);
    ioapic_rte(abase, pin, VEC_REGBANK | (1u << 15) | (1u << 16), 0);
    if (!got) return test_fail("no interrupt on GSI %lu within 2 s of arming a 20 ms timer (COUNT +%u)", gsi, count);
    if (t < 15000) return test_fail("the interrupt came %lu us after arming a 20 ms timer", t);
    /* As in virtio_pci_intx: this host's KVM may deliver a level interrupt once more right after
     * the handler deasserted it (the second handler then reads STATUS 0); more, or any later,
     * means the line stayed asserted. */
    if (early > 2 || irqs != early)
        return test_fail("%u interrupts within 10 ms of one expiry, %u after 40 ms (STATUS write did not deassert?)",
                         early, irqs);
    if (count != 1) return test_fail("COUNT went up by %u", count);
    if (!(first_status & 1) || (status & 1)) return test_fail("STATUS %x in the first handler, %x after", first_status, status);
    if (elapsed < 20000 || elapsed > 2000000) return test_fail("ELAPSED_US %u for a 20000 us timer", elapsed);
    test_pass("ids %08x/%08x, irq after %lu us (device: %u us), %u interrupt(s)", mid, pid, t, elapsed, irqs);
}
GUEST_TEST(vdev_regbank, test_vdev_regbank, TEST_NORMAL, "the sample loadable vdev regbank (qvm only)");

/* vdev_regbank_pci: the regbank instance without `loc`, a PCI function 1c05:7f01 with its
 * registers in memory BAR0 and the timer's interrupt on INTA# (Interrupt Line = the GSI qvm
 * wired it to: level, active low). Same checks as above through the BAR, plus Status.Interrupt
 * while the line is asserted and Command.InterruptDisable holding delivery back. */
static void test_vdev_regbank_pci(void)
{
    unsigned dev = 32;
    for (unsigned d = 0; d < 32 && dev == 32; d++)
        if (pci_cfg_read32(0, d, 0, 0) == 0x7f011c05) dev = d;
    if (dev == 32) return test_fail("no PCI function 1c05:7f01 on bus 0");
    uint32_t bar0 = pci_cfg_read32(0, dev, 0, 0x10);
    uint8_t pin = pci_cfg_read8(0, dev, 0, 0x3d), line = pci_cfg_read8(0, dev, 0, 0x3c);
    uint16_t cmd = pci_cfg_read16(0, dev, 0, 4);
    if ((bar0 & 1) || (bar0 & ~0xfffu) == 0) return test_fail("00:%02x.0 BAR0 %08x: expected a placed memory BAR", dev, bar0);
    if (!(cmd & 2)) return test_fail("00:%02x.0 Command %04x: memory decoding off", dev, cmd);
    if (pin != 1 || line < 16 || line > 23) return test_fail("00:%02x.0 Interrupt Pin %u Line %u", dev, pin, line);
    uint64_t base = bar0 & ~0xfffu;
    uint32_t id = mmio_read32(base + RB_ID);
    mmio_write32(base + RB_SCRATCH, 0x600df00d);
    uint32_t sc = mmio_read32(base + RB_SCRATCH);
    if (id != RB_DEFAULT_ID || sc != 0x600df00d) return test_fail("through BAR0: ID %08x SCRATCH %08x", id, sc);

    uint64_t abase;
    unsigned pin_io;
    if (!gsi_ioapic(line, &abase, &pin_io)) return test_fail("GSI %u on no IOAPIC", line);
    const uint32_t lo = VEC_REGBANK | (1u << 15) | (1u << 13); /* level, active low */
    rb_base = base;
    rb_irqs = 0;
    irq_set_handler(VEC_REGBANK, rb_isr, EOI_LAPIC);
    ioapic_rte(abase, pin_io, lo, lapic_id() << 24);
    /* 1. InterruptDisable: the timer fires, Status.Interrupt shows it, nothing is delivered */
    pci_cfg_write16(0, dev, 0, 4, cmd | 0x400);
    mmio_write32(base + RB_TIMER_US, 5000);
    bool fired = WAIT_US(mmio_read32(base + RB_STATUS) & 1, 2000000);
    udelay(10000);
    uint32_t masked_irqs = rb_irqs;
    uint16_t status = pci_cfg_read16(0, dev, 0, 6);
    /* 2. InterruptDisable off: the pending interrupt arrives; the handler clears STATUS */
    pci_cfg_write16(0, dev, 0, 4, cmd & ~0x400);
    bool got = WAIT_US(rb_irqs > 0, 2000000);
    udelay(10000);
    uint32_t early = rb_irqs;
    udelay(30000);
    uint32_t irqs = rb_irqs;
    uint16_t status_after = pci_cfg_read16(0, dev, 0, 6);
    ioapic_rte(abase, pin_io, lo | (1u << 16), 0);
    if (!fired) return test_fail("the timer did not fire within 2 s (STATUS %x)", mmio_read32(base + RB_STATUS));
    if (masked_irqs) return test_fail("%u interrupts with Command.InterruptDisable set", masked_irqs);
    if (!(status & 0x08)) return test_fail("Status %04x: Interrupt Status clear while INTA# is pending", status);
    if (!got) return test_fail("no interrupt on GSI %u after clearing InterruptDisable", line);
    if (early > 2 || irqs != early) return test_fail("%u interrupts, %u after 40 ms (not deasserted?)", early, irqs);
    if (status_after & 0x08) return test_fail("Status %04x: Interrupt Status still set after the handler", status_after);
    test_pass("00:%02x.0 BAR0 %08lx INTA# GSI %u: %u interrupt(s)", dev, base, line, irqs);
}
GUEST_TEST(vdev_regbank_pci, test_vdev_regbank_pci, TEST_NORMAL, "the sample loadable vdev regbank on PCI (qvm only)");

/* vdev_vecho / vdev_vecho_pci: the sample loadable virtio device examples/vdev/vecho (device id
 * 63) through the kit's virtio driver, on virtio-mmio (key 0x21 from its `key` option) and on
 * virtio-pci (default key 0x5a): the configuration space (read-only counter, writable key), one
 * request echoed XORed with the key, the counter after it. */
#define VECHO_ID 63
static void vecho_run(struct vdev *d, uint32_t want_key)
{
    uint32_t req0 = vdev_cfg32(d, 0), key0 = vdev_cfg32(d, 4);
    vdev_cfg_write32(d, 0, 1234); /* read-only: ignored */
    vdev_cfg_write32(d, 4, 0x3c);
    uint32_t req1 = vdev_cfg32(d, 0), key1 = vdev_cfg32(d, 4);
    uint8_t *b = dma_alloc(64, 64);
    if (!b) return test_fail("out of DMA memory");
    for (unsigned i = 0; i < 24; i++) b[i] = (uint8_t)(i * 7 + 1);
    memset(b + 32, 0, 32);
    struct vbuf v[2] = {{(uintptr_t)b, 24, false}, {(uintptr_t)(b + 32), 32, true}};
    vq_set_no_interrupt(&d->q[0], true);
    if (vq_add(&d->q[0], v, 2) < 0) return test_fail("%s: cannot add a chain", vdev_name(d));
    vq_kick(d, 0);
    uint32_t id, len;
    bool used = vq_wait(d, 0, 2000000, &id, &len);
    uint32_t req2 = vdev_cfg32(d, 0);
    if (key0 != want_key) return test_fail("%s: key %x, expected %x", vdev_name(d), key0, want_key);
    if (req0 != 0 || req1 != 0) return test_fail("%s: requests %u then %u before any (read-only?)", vdev_name(d), req0, req1);
    if (key1 != 0x3c) return test_fail("%s: key %x after writing 0x3c", vdev_name(d), key1);
    if (!used) return test_fail("%s: request not completed within 2 s", vdev_name(d));
    if (len != 24) return test_fail("%s: used length %u, expected 24", vdev_name(d), len);
    for (unsigned i = 0; i < 24; i++)
        if (b[32 + i] != (uint8_t)((i * 7 + 1) ^ 0x3c)) return test_fail("%s: byte %u is %02x", vdev_name(d), i, b[32 + i]);
    if (b[32 + 24] != 0) return test_fail("%s: wrote past the request's length", vdev_name(d));
    if (req2 != 1) return test_fail("%s: requests %u after one", vdev_name(d), req2);
    vdev_reset(d);
    test_pass("%s: 24 bytes echoed with key 0x3c, requests 1", vdev_name(d));
}

static void test_vdev_vecho(void)
{
    struct vmmio_slot *s = vmmio_find(VECHO_ID, 0);
    if (!s) return test_fail("no virtio-mmio device with id %u", VECHO_ID);
    static struct vdev dev;
    if (!vdev_init(&dev, s, 0, 1, 64)) return test_fail("init: %s", dev.err);
    vecho_run(&dev, 0x21);
}
GUEST_TEST(vdev_vecho, test_vdev_vecho, TEST_NORMAL, "the sample loadable virtio device vecho on virtio-mmio (qvm only)");

static void test_vdev_vecho_pci(void)
{
    struct vpci_fn *f = vpci_find(VECHO_ID, 0);
    if (!f) return test_fail("no virtio-pci function with id %u", VECHO_ID);
    static struct vdev dev;
    if (!vpci_init(&dev, f, 0, 1, 64, NULL, VIRTIO_MSI_NO_VECTOR)) return test_fail("init: %s", dev.err);
    vecho_run(&dev, 0x5a);
}
GUEST_TEST(vdev_vecho_pci, test_vdev_vecho_pci, TEST_NORMAL, "the sample loadable virtio device vecho on virtio-pci (qvm only)");
