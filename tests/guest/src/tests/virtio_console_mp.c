/* virtio-console MULTIPORT (virtio 1.2 §5.3.6.2) over MMIO, polling: the first console device
 * must offer VIRTIO_CONSOLE_F_MULTIPORT with a named port 1 (qvm: `port org.qvm.kit,...`; QEMU:
 * virtserialport name=org.qvm.kit nr=1). Queues: 0/1 port 0, 2 c_ivq, 3 c_ovq, 4/5 port 1.
 *   virtio_console_multiport  DEVICE_READY -> DEVICE_ADD for ports 0 and 1 (at least); PORT_READY
 *                  for each -> PORT_NAME "org.qvm.kit" and PORT_OPEN 1 for port 1; PORT_OPEN 1
 *                  from the guest; transmits "qvm-vport-out <vcon_nonce>\n" on port 1 (the runner
 *                  checks its port-1 backend) and prints "INPUT virtio_console_multiport
 *                  vport-in-<nonce>"; the runner writes that + "\n" to the port-1 backend, which
 *                  must arrive on port 1's receiveq. */
#include "virtio.h"

#define F_MULTIPORT (1ull << 1)
#define CTL_DEVICE_READY 0
#define CTL_DEVICE_ADD 1
#define CTL_PORT_READY 3
#define CTL_CONSOLE_PORT 4
#define CTL_PORT_OPEN 6
#define CTL_PORT_NAME 7
#define CBUFS 8
#define CLEN 64
#define PORT1_NAME "org.qvm.kit"

struct ctl {
    uint32_t id;
    uint16_t event, value;
};

static uint8_t *cbuf, *obuf;

/* one control message driver -> device on c_ovq, waited for */
static bool ctl_send(struct vdev *d, uint32_t id, uint16_t event, uint16_t value)
{
    struct ctl *c = (struct ctl *)obuf;
    c->id = id, c->event = event, c->value = value;
    struct vbuf v = {(uintptr_t)c, sizeof *c, false};
    if (vq_add(&d->q[3], &v, 1) < 0) return false;
    vq_kick(d, 3);
    return vq_wait(d, 3, 2000000, NULL, NULL);
}

static void repost(struct vdev *d, uint8_t *p)
{
    struct vbuf v = {(uintptr_t)p, CLEN, true};
    vq_add(&d->q[2], &v, 1);
    vq_kick(d, 2);
}

static void test_virtio_console_multiport(void)
{
    struct vmmio_slot *s = vmmio_find(VIRTIO_ID_CONSOLE, 0);
    if (!s) return test_fail("no virtio-console device");
    static struct vdev dev;
    struct vdev *d = &dev;
    if (!vdev_init(d, s, F_MULTIPORT, 6, 16)) return test_fail("init %lx: %s", s->base, d->err);
    if (!(d->features & F_MULTIPORT)) return vdev_reset(d), test_fail("MULTIPORT not offered (features %lx)", d->device_features);
    uint32_t max_ports = vdev_cfg32(d, 4);
    cbuf = dma_alloc(CBUFS * CLEN, 64);
    obuf = dma_alloc(64, 64);
    uint8_t *rx = dma_alloc(4 * 16, 64), *tx = dma_alloc(128, 64);
    if (!cbuf || !obuf || !rx || !tx) return vdev_reset(d), test_fail("out of DMA memory");
    for (unsigned i = 0; i < CBUFS; i++) repost(d, cbuf + i * CLEN);
    if (!ctl_send(d, 0, CTL_DEVICE_READY, 1)) return vdev_reset(d), test_fail("DEVICE_READY not consumed");

    /* handshake: answer DEVICE_ADD with PORT_READY, collect PORT_NAME / PORT_OPEN for port 1 */
    unsigned adds = 0, console_port = 99;
    bool named = false, host_open = false;
    char name[CLEN];
    name[0] = 0;
    uint64_t t0 = now_us();
    while (!(named && host_open) && now_us() - t0 < 3000000) {
        uint32_t id, len;
        if (!vq_poll(&d->q[2], &id, &len)) continue;
        uint8_t *p = (uint8_t *)(uintptr_t)d->q[2].desc[id].addr;
        struct ctl c;
        if (len < sizeof c) {
            repost(d, p);
            continue;
        }
        memcpy(&c, p, sizeof c);
        if (c.event == CTL_DEVICE_ADD) {
            adds++;
            if (!ctl_send(d, c.id, CTL_PORT_READY, 1)) return vdev_reset(d), test_fail("PORT_READY %u not consumed", c.id);
        } else if (c.event == CTL_CONSOLE_PORT) {
            console_port = c.id;
        } else if (c.event == CTL_PORT_NAME && c.id == 1) {
            size_t n = len - sizeof c < sizeof name - 1 ? len - sizeof c : sizeof name - 1;
            memcpy(name, p + sizeof c, n);
            name[n] = 0;
            named = true;
        } else if (c.event == CTL_PORT_OPEN && c.id == 1 && c.value == 1) {
            host_open = true;
        }
        repost(d, p);
    }
    if (adds < 2) return vdev_reset(d), test_fail("%u DEVICE_ADD messages (max_nr_ports %u)", adds, max_ports);
    if (!named || strcmp(name, PORT1_NAME) != 0)
        return vdev_reset(d), test_fail("port 1 name \"%s\" (named=%d), expected " PORT1_NAME, name, named);
    if (!host_open) return vdev_reset(d), test_fail("no PORT_OPEN 1 for port 1 from the host");
    if (!ctl_send(d, 1, CTL_PORT_OPEN, 1)) return vdev_reset(d), test_fail("PORT_OPEN not consumed");

    /* data on port 1 */
    for (unsigned i = 0; i < 4; i++) {
        struct vbuf v = {(uintptr_t)(rx + i * 16), 16, true};
        vq_add(&d->q[4], &v, 1);
    }
    vq_kick(d, 4);
    const char *nonce = cmdline_get("vcon_nonce");
    char nz[24];
    size_t nl = 0;
    while (nonce && nonce[nl] && nonce[nl] != ' ' && nl + 1 < sizeof nz) nz[nl] = nonce[nl], nl++;
    nz[nl] = 0;
    if (!nl) nz[0] = '0', nz[1] = 0;
    int tl = snprintf((char *)tx, 128, "qvm-vport-out %s\n", nz);
    struct vbuf tv = {(uintptr_t)tx, (uint32_t)tl, false};
    vq_add(&d->q[5], &tv, 1);
    vq_kick(d, 5);
    if (!vq_wait(d, 5, 2000000, NULL, NULL)) return vdev_reset(d), test_fail("port 1 transmitq buffer not used");
    char want[48], got[64];
    int wl = snprintf(want, sizeof want, "vport-in-%s", nz);
    size_t gl = 0;
    bool done = false;
    printk("INPUT virtio_console_multiport %s\n", want);
    t0 = now_us();
    while (!done && now_us() - t0 < 10000000) {
        uint32_t id, len;
        if (!vq_poll(&d->q[4], &id, &len)) continue;
        uint8_t *p = (uint8_t *)(uintptr_t)d->q[4].desc[id].addr;
        for (uint32_t i = 0; i < len && i < 16 && gl + 1 < sizeof got; i++) {
            got[gl++] = (char)p[i];
            if (p[i] == '\n') done = true;
        }
        struct vbuf v = {(uintptr_t)p, 16, true};
        vq_add(&d->q[4], &v, 1);
        vq_kick(d, 4);
    }
    got[gl] = 0;
    vdev_reset(d);
    if (!done || gl < (size_t)wl + 1 || memcmp(got, want, (size_t)wl))
        return test_fail("port 1 received \"%s\", expected \"%s\\n\"", got, want);
    test_pass("%s max_nr_ports=%u adds=%u console_port=%u port1=%s tx=%d rx=%u nonce=%s", vdev_name(d), max_ports,
              adds, console_port, name, tl, (unsigned)gl, nz);
}
GUEST_TEST(virtio_console_multiport, test_virtio_console_multiport, TEST_NORMAL,
           "virtio-console MULTIPORT: control handshake, named port 1 both ways");
