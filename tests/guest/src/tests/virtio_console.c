/* virtio-console over MMIO (virtio 1.2 §5.3), port 0 without MULTIPORT: queue 0 = receiveq,
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

static void test_virtio_console(void)
{
    uint64_t want = 1;
    cmdline_u64("vcon", &want);
    unsigned n = 0;
    while (vmmio_find(VIRTIO_ID_CONSOLE, n)) n++;
    if (n != want) return test_fail("%u console devices, expected vcon=%lu", n, want);
    if (!n) return test_pass("no console expected");
    const char *nonce = cmdline_get("vcon_nonce");
    char nz[24];
    size_t nl = 0;
    while (nonce && nonce[nl] && nonce[nl] != ' ' && nl + 1 < sizeof nz) nz[nl] = nonce[nl], nl++;
    nz[nl] = 0;
    if (!nl) nz[0] = '0', nz[1] = 0;

    struct vmmio_slot *s = vmmio_find(VIRTIO_ID_CONSOLE, 0);
    static struct vdev dev;
    struct vdev *d = &dev;
    if (!vdev_init(d, s, 0, 2, 16)) return test_fail("init %lx: %s", s->base, d->err);
    uint8_t *rx = dma_alloc(RXBUFS * RXLEN, 64), *tx = dma_alloc(128, 64);
    if (!rx || !tx) return test_fail("out of DMA memory");
    unsigned si = vmmio_slot_index(s);
    vmmio_isr_bits[si] = 0;
    if (!vdev_irq_route(d, false)) return test_fail("cannot route gsi %u", s->gsi);
    uint32_t c0 = irq_count[d->vec];
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
        vdev_irq_mask(d);
        vdev_reset(d);
        return test_fail("transmitq buffer not used within 2 s");
    }

    /* receive */
    char want_in[48], got[64];
    int wl = snprintf(want_in, sizeof want_in, "vcon-in-%s", nz);
    size_t gl = 0;
    printk("INPUT virtio_console %s\n", want_in);
    uint64_t t0 = now_us();
    bool done = false;
    while (!done && now_us() - t0 < 10000000) {
        if (!WAIT_US(vq_poll(&d->q[0], &id, &len), 10000000 - (now_us() - t0))) break;
        if (id >= d->q[0].size || len > RXLEN) {
            vdev_irq_mask(d);
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
    uint32_t irqs = irq_count[d->vec] - c0;
    vdev_irq_mask(d);
    vdev_reset(d);
    if (!done) return test_fail("received %u bytes \"%s\" within 10 s (irqs=%u)", (unsigned)gl, got, irqs);
    if (gl < (size_t)wl + 1 || memcmp(got, want_in, (size_t)wl) || (got[wl] != '\n' && got[wl] != '\r'))
        return test_fail("received \"%s\", expected \"%s\\n\"", got, want_in);
    if (!irqs) return test_fail("data arrived but no interrupt was counted (gsi %u)", s->gsi);
    test_pass("%lx v%u feat=%lx tx=%d rx=%u irqs=%u isr=%x nonce=%s", s->base, d->version, d->features, tl,
              (unsigned)gl, irqs, vmmio_isr_bits[si], nz);
}
GUEST_TEST(virtio_console, test_virtio_console, TEST_NORMAL, "virtio-console port 0: transmit and receive");
