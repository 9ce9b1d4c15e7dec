/* virtio-console (virtio 1.2 §5.3) over MMIO (virtio_console) and PCI (virtio_pci_console, MSI-X
 * interrupts), port 0 without MULTIPORT: queue 0 = receiveq,
 * queue 1 = transmitq.
 *   virtio_console  writes "qvm-vcon-out <vcon_nonce>\n" through the transmitq (the runner checks
 *                   that its console backend received it), then prints
 *                   "INPUT virtio_console vcon-in-<nonce>"; the runner writes that token + "\n"
 *                   to the backend; the guest receives it through receiveq buffers, interrupt
 *                   driven (IOAPIC pin with the _CRS trigger mode), reposting buffers as they fill.
 *   vcon=N          number of console devices expected (default 1); the first one is tested. */
#include "virtio.h"

#define RXBUFS 4
#define RXLEN 16 /* small on purpose: the token spans several buffers */

/* nonce from the command line ("0" if none) */
static void get_nonce(char *nz, size_t sz)
{
    const char *nonce = cmdline_get("vcon_nonce");
    size_t nl = 0;
    while (nonce && nonce[nl] && nonce[nl] != ' ' && nl + 1 < sz) nz[nl] = nonce[nl], nl++;
    nz[nl] = 0;
    if (!nl) nz[0] = '0', nz[1] = 0;
}

/* transmit + receive on an initialized device whose receiveq interrupts arrive on IDT vector
 * vec (counted in irq_count); disarm() masks them. Reports the test result. */
static void console_run(struct vdev *d, const char *test, unsigned vec, void (*disarm)(struct vdev *), const char *extra)
{
    char nz[24];
    get_nonce(nz, sizeof nz);
    uint8_t *rx = dma_alloc(RXBUFS * RXLEN, 64), *tx = dma_alloc(128, 64);
    if (!rx || !tx) return disarm(d), vdev_reset(d), test_fail("out of DMA memory");
    uint32_t c0 = irq_count[vec];
    for (unsigned i = 0; i < RXBUFS; i++) {
        struct vbuf v = {(uintptr_t)(rx + i * RXLEN), RXLEN, true};
        vq_add(&d->q[0], &v, 1);
    }
    vq_kick(d, 0);

    /* transmit */
    int tl = snprintf((char *)tx, 128, "qvm-vcon-out %s\n", nz);
    struct vbuf tv = {(uintptr_t)tx, (uint32_t)tl, false};
    vq_add(&d->q[1], &tv, 1);
    vq_kick(d, 1);
    uint32_t id, len;
    if (!vq_wait(d, 1, 2000000, &id, &len)) {
        disarm(d);
        vdev_reset(d);
        return test_fail("transmitq buffer not used within 2 s");
    }

    /* receive */
    char want_in[48], got[64];
    int wl = snprintf(want_in, sizeof want_in, "vcon-in-%s", nz);
    size_t gl = 0;
    printk("INPUT %s %s\n", test, want_in);
    uint64_t t0 = now_us();
    bool done = false;
    while (!done && now_us() - t0 < 10000000) {
        if (!WAIT_US(vq_poll(&d->q[0], &id, &len), 10000000 - (now_us() - t0))) break;
        if (id >= d->q[0].size || len > RXLEN) {
            disarm(d);
            vdev_reset(d);
            return test_fail("receiveq used entry id %u len %u", id, len);
        }
        /* chains are single descriptors: head id -> buffer (id % RXBUFS after the first round) */
        uint8_t *p = (uint8_t *)(uintptr_t)d->q[0].desc[id].addr;
        for (uint32_t i = 0; i < len && gl + 1 < sizeof got; i++) {
            got[gl++] = (char)p[i];
            if (p[i] == '\n') done = true;
        }
        struct vbuf v = {(uintptr_t)p, RXLEN, true};
        vq_add(&d->q[0], &v, 1);
        vq_kick(d, 0);
    }
    got[gl] = 0;
    /* The device publishes the used entry before it sends the interrupt: a polling reader can see
     * the data first. Give the interrupt up to 1 s to follow. */
    uint64_t tw = now_us();
    while (done && irq_count[vec] == c0 && now_us() - tw < 1000000) {
    }
    uint32_t irqs = irq_count[vec] - c0;
    disarm(d);
    vdev_reset(d);
    if (!done) return test_fail("received %u bytes \"%s\" within 10 s (irqs=%u)", (unsigned)gl, got, irqs);
    if (gl < (size_t)wl + 1 || memcmp(got, want_in, (size_t)wl) || (got[wl] != '\n' && got[wl] != '\r'))
        return test_fail("received \"%s\", expected \"%s\\n\"", got, want_in);
    if (!irqs) return test_fail("data arrived but no interrupt was counted (vector 0x%x)", vec);
    test_pass("%s v%u feat=%lx tx=%d rx=%u irqs=%u %s nonce=%s", vdev_name(d), d->version, d->features, tl, (unsigned)gl,
              irqs, extra, nz);
}

static void mmio_disarm(struct vdev *d) { vdev_irq_mask(d); }

static void test_virtio_console(void)
{
    uint64_t want = 1;
    cmdline_u64("vcon", &want);
    unsigned n = 0;
    while (vmmio_find(VIRTIO_ID_CONSOLE, n)) n++;
    if (n != want) return test_fail("%u console devices, expected vcon=%lu", n, want);
    if (!n) return test_pass("no console expected");
    struct vmmio_slot *s = vmmio_find(VIRTIO_ID_CONSOLE, 0);
    static struct vdev dev;
    struct vdev *d = &dev;
    if (!vdev_init(d, s, 0, 2, 16)) return test_fail("init %lx: %s", s->base, d->err);
    vmmio_isr_bits[vmmio_slot_index(s)] = 0;
    if (!vdev_irq_route(d, false)) return test_fail("cannot route gsi %u", s->gsi);
    console_run(d, "virtio_console", d->vec, mmio_disarm, "");
}
GUEST_TEST(virtio_console, test_virtio_console, TEST_NORMAL, "virtio-console port 0: transmit and receive");

/* virtio-pci: receiveq on MSI-X entry 1 (IDT vector VEC_VPCI_MSIX_BASE + 0x2d; entries 0-2 use
 * the last 4 vectors of the block), transmitq on entry 2 (entry 1 if the table has only 2),
 * config on entry 0 */
#define VCON_PCI_VEC (VEC_VPCI_MSIX_BASE + 0x2c)

static void pci_disarm(struct vdev *d)
{
    for (unsigned e = 0; e < 3; e++) vpci_msix_mask(d->pci, e, true);
    vpci_msix_enable(d->pci, false);
}

static void test_virtio_pci_console(void)
{
    uint64_t want = 1;
    cmdline_u64("vcon", &want);
    unsigned n = 0;
    while (vpci_find(VIRTIO_ID_CONSOLE, n)) n++;
    if (n != want) return test_fail("%u console functions, expected vcon=%lu", n, want);
    if (!n) return test_pass("no console expected");
    struct vpci_fn *f = vpci_find(VIRTIO_ID_CONSOLE, 0);
    if (!f->msix_table || f->msix_size < 2) return test_fail("%s: no MSI-X table with >= 2 entries (%u)", vpci_name(f), f->msix_size);
    unsigned nent = f->msix_size >= 3 ? 3 : 2; /* transmitq shares receiveq's entry if the table is small */
    vpci_intx(f, false);
    for (unsigned e = 0; e < nent; e++) {
        irq_set_handler(VCON_PCI_VEC + e, NULL, EOI_LAPIC);
        vpci_msix_entry(f, e, VCON_PCI_VEC + e, false);
    }
    vpci_msix_enable(f, true);
    static struct vdev dev;
    struct vdev *d = &dev;
    uint16_t qv[2] = {1, (uint16_t)(nent - 1)};
    if (!vpci_init(d, f, 0, 2, 16, qv, 0)) return pci_disarm(d), test_fail("init %s: %s", vpci_name(f), d->err);
    if (d->qvec[0] != qv[0] || d->qvec[1] != qv[1])
        return pci_disarm(d), vdev_reset(d), test_fail("queue_msix_vector read back %x/%x, wrote %x/%x", d->qvec[0], d->qvec[1], qv[0], qv[1]);
    console_run(d, "virtio_pci_console", VCON_PCI_VEC + 1, pci_disarm, "msix");
}
GUEST_TEST(virtio_pci_console, test_virtio_pci_console, TEST_NORMAL, "virtio-pci console port 0: transmit and receive (MSI-X)");
