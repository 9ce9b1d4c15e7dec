/* virtio-entropy with a rate limit (virtio 1.2 §5.4): qvm `vdev virtio-entropy ... rate N` (token
 * bucket of N bytes/s, one second of burst), QEMU virtio-rng max-bytes=N,period=1000 (N bytes per
 * one-second window). Expectation from the runner's device set: vrate=N.
 *   virtio_entropy_rate      the first virtio-mmio entropy device
 *   virtio_pci_entropy_rate  the first virtio-pci entropy function (MSI-X and INTx off)
 * Polling only (VIRTQ_AVAIL_F_NO_INTERRUPT). The test asks for 3·N bytes in buffers of 64 bytes,
 * at most 12 in flight: all posted, one notification. A device may fill a buffer only partly (qvm
 * serves what its bucket holds, often 1 byte once it is empty), so bytes are counted, not
 * buffers: a buffer that comes back is posted again (with a notification, as a driver does) only
 * while the bytes received plus the room still in flight fall short of 3·N. Pass: every buffer
 * comes back used with 1..64 bytes, few of them zero; 3·N bytes within vrate_ms (default 6000),
 * and not sooner than 0.5 · (3·N − N) / N s = 1 s (the burst is at most N bytes; a device without
 * the limit answers within milliseconds). A device that stops once its burst is spent and waits
 * for the next notification never returns another buffer: nothing is posted again, no
 * notification follows, and the test fails at the bound. */
#include "virtio.h"

#define RATE_LEN 64
#define RATE_BUFS 12

static void rate_post(struct virtq *q, uint8_t *b, unsigned i)
{
    memset(b + i * RATE_LEN, 0, RATE_LEN);
    struct vbuf v = {(uintptr_t)(b + i * RATE_LEN), RATE_LEN, true};
    vq_add_at(q, (uint16_t)i, &v, 1);
}

/* an initialized device, queue 0 ready: returns NULL on success, else a message in msg */
static const char *rate_run(struct vdev *d, uint64_t rate, char *msg, size_t msz, char *info, size_t isz)
{
    uint64_t limit_ms = 6000;
    cmdline_u64("vrate_ms", &limit_ms);
    struct virtq *q = &d->q[0];
    unsigned nbuf = q->size < RATE_BUFS ? q->size : RATE_BUFS;
    uint8_t *b = dma_alloc(RATE_BUFS * RATE_LEN, 64);
    if (!b) return "out of DMA memory";
    const uint64_t want = 3 * rate, min_us = (want - rate) * 500000 / rate;
    bool busy[RATE_BUFS] = {false};
    unsigned nout = 0;
    uint64_t got = 0, zeros = 0, used = 0, partial = 0, reposted = 0;
    vq_set_no_interrupt(q, true);
    for (unsigned i = 0; i < nbuf && got + (uint64_t)RATE_LEN * nout < want; i++) {
        rate_post(q, b, i);
        busy[i] = true;
        nout++;
    }
    const unsigned posted = nout;
    uint64_t t0 = now_us(), t_last = t0;
    vq_kick(d, 0);
    while (nout > 0) {
        uint32_t id, len;
        if (!vq_poll(q, &id, &len)) {
            uint64_t t = now_us();
            if (t - t0 > limit_ms * 1000)
                return snprintf(msg, msz, "%lu of %lu bytes after %lu ms (none since %lu ms): %u buffers wait, "
                                "used idx %u, avail idx %u, status %x", got, want, (t - t0) / 1000,
                                (t_last - t0) / 1000, nout, q->used_hdr[1], q->avail_idx, vdev_status(d)), msg;
            cpu_relax();
            continue;
        }
        t_last = now_us();
        if (id >= nbuf || !busy[id]) return snprintf(msg, msz, "used id %u was not in flight", id), msg;
        if (len == 0 || len > RATE_LEN)
            return snprintf(msg, msz, "used length %u (buffer of %u bytes)", len, RATE_LEN), msg;
        busy[id] = false;
        nout--;
        used++;
        got += len;
        partial += len < RATE_LEN;
        for (uint32_t k = 0; k < len; k++) zeros += b[id * RATE_LEN + k] == 0;
        if (got + (uint64_t)RATE_LEN * nout < want) {
            rate_post(q, b, id);
            busy[id] = true;
            nout++;
            reposted++;
            vq_kick(d, 0);
        }
    }
    uint64_t el = t_last - t0;
    if (zeros * 16 > got) return snprintf(msg, msz, "%lu of %lu random bytes are zero", zeros, got), msg;
    if (el < min_us)
        return snprintf(msg, msz, "%lu bytes in %lu us, a limit of %lu bytes/s allows no less than %lu ms: "
                        "not rate-limited", got, el, rate, min_us / 1000), msg;
    if (!vdev_reset(d)) return "status does not read 0 after reset";
    snprintf(info, isz, "%s rate=%lu: %lu bytes in %lu ms (min %lu, max %lu), %lu buffers used (%u posted, %lu "
             "again, %lu partial), kicks=%lu zeros=%lu", vdev_name(d), rate, got, el / 1000, min_us / 1000, limit_ms,
             used, posted, reposted, partial, d->kicks, zeros);
    return NULL;
}

static bool rate_fact(uint64_t *rate)
{
    if (!cmdline_u64("vrate", rate) || *rate == 0) {
        test_fail("no vrate=N (bytes/s of the rate-limited entropy device) on the command line");
        return false;
    }
    return true;
}

static void test_virtio_entropy_rate(void)
{
    uint64_t rate;
    if (!rate_fact(&rate)) return;
    struct vmmio_slot *s = vmmio_find(VIRTIO_ID_ENTROPY, 0);
    if (!s) return test_fail("no virtio-mmio entropy device");
    static struct vdev dev;
    struct vdev *d = &dev;
    if (!vdev_init(d, s, 0, 1, 16)) return test_fail("device %lx: init: %s", s->base, d->err);
    vdev_irq_route(d, true); /* pin programmed but masked: polling only */
    char msg[200], info[200];
    const char *e = rate_run(d, rate, msg, sizeof msg, info, sizeof info);
    if (e) {
        vdev_reset(d);
        return test_fail("device %lx: %s", s->base, e);
    }
    test_pass("%s", info);
}
GUEST_TEST(virtio_entropy_rate, test_virtio_entropy_rate, TEST_NORMAL,
           "virtio-mmio entropy with vrate=N: 3N bytes served beyond the burst, at the rate");

static void test_virtio_pci_entropy_rate(void)
{
    uint64_t rate;
    if (!rate_fact(&rate)) return;
    struct vpci_fn *f = vpci_find(VIRTIO_ID_ENTROPY, 0);
    if (!f) return test_fail("no virtio-pci entropy function");
    static struct vdev dev;
    struct vdev *d = &dev;
    vpci_msix_enable(f, false);
    vpci_intx(f, false);
    if (!vpci_init(d, f, 0, 1, 16, NULL, VIRTIO_MSI_NO_VECTOR)) return test_fail("%s: init: %s", vpci_name(f), d->err);
    char msg[200], info[200];
    const char *e = rate_run(d, rate, msg, sizeof msg, info, sizeof info);
    if (e) {
        vdev_reset(d);
        return test_fail("%s: %s", vpci_name(f), e);
    }
    test_pass("%s", info);
}
GUEST_TEST(virtio_pci_entropy_rate, test_virtio_pci_entropy_rate, TEST_NORMAL,
           "virtio-pci entropy with vrate=N: 3N bytes served beyond the burst, at the rate");
