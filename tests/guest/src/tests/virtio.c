/* virtio-mmio transport tests (virtio 1.2 §4.2). Expectations come from the runner's device set:
 *   virtio_mmio     discovery: ACPI LNRO0005 devices (+ virtio_mmio=BASE@GSI,... hint), each with
 *                   magic "virt", version vmmio_version=V (default 2) and a device id; the number
 *                   equals vmmio=N and the multiset of device ids equals vmmio_ids=a,b,... if given
 *   virtio_entropy  every entropy device (ventropy=N): full init, two buffers by polling (not all
 *                   zero, not identical), InterruptStatus read + ACK, one buffer by interrupt
 *                   (IOAPIC pin with the _CRS trigger mode), reset */
#include "virtio.h"

static const char *trig(const struct vmmio_slot *s) { return !s->has_irq ? "none" : s->level ? "level" : "edge"; }

static void test_virtio_mmio(void)
{
    struct vmmio_slot *s;
    unsigned n = vmmio_discover(&s);
    for (unsigned i = 0; i < n; i++)
        printk("INFO virtio-mmio slot %u: %s uid=%ld base=%lx size=%x gsi=%u %s%s magic=%x version=%u "
               "device=%u vendor=%x\n", i, s[i].source, s[i].uid, s[i].base, s[i].size, s[i].gsi, trig(&s[i]),
               s[i].active_low ? "/low" : "/high", s[i].magic, s[i].version, s[i].device_id, s[i].vendor_id);
    uint64_t want_n, want_ver = 2;
    if (!cmdline_u64("vmmio", &want_n)) return test_fail("no vmmio=N expectation on the command line");
    cmdline_u64("vmmio_version", &want_ver);
    if (n != want_n) return test_fail("found %u virtio-mmio devices, expected vmmio=%lu", n, want_n);
    unsigned ids[32] = {0};
    for (unsigned i = 0; i < n; i++) {
        if (s[i].magic != VIRTIO_MMIO_MAGIC_VALUE)
            return test_fail("slot %lx: MagicValue %x", s[i].base, s[i].magic);
        if (s[i].version != want_ver)
            return test_fail("slot %lx: Version %u, expected %lu", s[i].base, s[i].version, want_ver);
        if (s[i].device_id == 0) return test_fail("slot %lx: DeviceID 0 (empty slot described)", s[i].base);
        if (s[i].size < 0x200) return test_fail("slot %lx: window %x < 0x200", s[i].base, s[i].size);
        if (!s[i].has_irq) return test_fail("slot %lx: no interrupt in _CRS", s[i].base);
        if (s[i].base & 0x1ff) return test_fail("slot %lx: misaligned", s[i].base);
        for (unsigned j = 0; j < i; j++)
            if (s[j].base < s[i].base + s[i].size && s[i].base < s[j].base + s[j].size)
                return test_fail("slots %lx and %lx overlap", s[j].base, s[i].base);
        if (s[i].device_id < 32) ids[s[i].device_id]++;
    }
    const char *l = cmdline_get("vmmio_ids");
    if (l) {
        unsigned want[32] = {0};
        while (*l && *l != ' ') {
            unsigned v = 0;
            while (*l >= '0' && *l <= '9') v = v * 10 + (unsigned)(*l++ - '0');
            if (v < 32) want[v]++;
            if (*l == ',') l++;
            else break;
        }
        for (unsigned i = 0; i < 32; i++)
            if (want[i] != ids[i]) return test_fail("%u devices with id %u, expected %u (vmmio_ids)", ids[i], i, want[i]);
    }
    char d[160];
    size_t o = 0;
    d[0] = 0;
    for (unsigned i = 0; i < n && o + 40 < sizeof d; i++)
        o += (size_t)snprintf(d + o, sizeof d - o, " %lx:id%u@%u%c", s[i].base, s[i].device_id, s[i].gsi,
                              s[i].level ? 'L' : 'E');
    test_pass("n=%u v%lu%s", n, want_ver, d);
}
GUEST_TEST(virtio_mmio, test_virtio_mmio, TEST_NORMAL, "virtio-mmio discovery via ACPI LNRO0005");

#define RNG_LEN 64

static bool all_zero(const uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (b[i]) return false;
    return true;
}

/* returns NULL on success, else a message in buf */
static const char *entropy_one(struct vmmio_slot *s, char *msg, size_t msz, char *info, size_t isz)
{
    static struct vdev dev;
    struct vdev *d = &dev;
    if (!vdev_init(d, s, 0, 1, 16)) {
        snprintf(msg, msz, "init: %s", d->err);
        return msg;
    }
    uint8_t *b = dma_alloc(4 * RNG_LEN, 64);
    if (!b) return "out of DMA memory";
    memset(b, 0, 4 * RNG_LEN);
    /* IOAPIC pin programmed but masked while polling */
    if (!vdev_irq_route(d, true)) {
        snprintf(msg, msz, "cannot route gsi %u", s->gsi);
        return msg;
    }
    /* 1. polling: two buffers, two chains */
    struct vbuf v0 = {(uintptr_t)b, RNG_LEN, true}, v1 = {(uintptr_t)(b + RNG_LEN), RNG_LEN, true};
    vq_add(&d->q[0], &v0, 1);
    vq_add(&d->q[0], &v1, 1);
    vq_kick(d, 0);
    uint32_t id0, len0, id1, len1;
    if (!vq_wait(d, 0, 2000000, &id0, &len0) || !vq_wait(d, 0, 2000000, &id1, &len1)) {
        snprintf(msg, msz, "used ring idx %u after 2 s (2 buffers posted, status %x)", d->q[0].used_hdr[1],
                 mmio_read32(d->base + VMMIO_STATUS));
        return msg;
    }
    if (len0 == 0 || len0 > RNG_LEN || len1 == 0 || len1 > RNG_LEN) {
        snprintf(msg, msz, "used lengths %u/%u (buffers of %u)", len0, len1, RNG_LEN);
        return msg;
    }
    if (!((id0 == 0 && id1 == 1) || (id0 == 1 && id1 == 0))) {
        snprintf(msg, msz, "used ids %u/%u, expected heads 0 and 1", id0, id1);
        return msg;
    }
    uint8_t *r0 = id0 == 0 ? b : b + RNG_LEN, *r1 = id0 == 0 ? b + RNG_LEN : b;
    uint32_t l0 = id0 == 0 ? len0 : len1, l1 = id0 == 0 ? len1 : len0;
    if (all_zero(r0, l0) || all_zero(r1, l1)) return "random bytes all zero";
    uint32_t lm = l0 < l1 ? l0 : l1;
    if (!memcmp(r0, r1, lm)) return "two reads returned identical bytes";
    /* InterruptStatus: used-buffer bit set (pin masked, nobody acknowledged); ACK clears it */
    uint32_t isr = mmio_read32(d->base + VMMIO_INTERRUPT_STATUS);
    if (!(isr & 1)) {
        snprintf(msg, msz, "InterruptStatus %x after used buffers (bit 0 clear)", isr);
        return msg;
    }
    mmio_write32(d->base + VMMIO_INTERRUPT_ACK, isr);
    uint32_t isr2 = mmio_read32(d->base + VMMIO_INTERRUPT_STATUS);
    if (isr2 & 1) {
        snprintf(msg, msz, "InterruptStatus %x after InterruptACK %x", isr2, isr);
        return msg;
    }
    /* 2. interrupt: unmask, one more buffer, wait for the handler */
    unsigned si = vmmio_slot_index(s);
    vmmio_isr_bits[si] = 0;
    uint32_t c0 = irq_count[d->vec];
    vdev_irq_route(d, false);
    struct vbuf v2 = {(uintptr_t)(b + 2 * RNG_LEN), RNG_LEN, true};
    vq_add(&d->q[0], &v2, 1);
    vq_kick(d, 0);
    bool got = WAIT_US(irq_count[d->vec] != c0, 2000000);
    uint32_t id2 = 0, len2 = 0;
    bool used = vq_wait(d, 0, 100000, &id2, &len2);
    vdev_irq_mask(d);
    uint32_t irqs = irq_count[d->vec] - c0;
    if (!got) {
        snprintf(msg, msz, "no interrupt on gsi %u (%s) within 2 s; used=%d InterruptStatus=%x", s->gsi, trig(s),
                 used, mmio_read32(d->base + VMMIO_INTERRUPT_STATUS));
        return msg;
    }
    if (!used || len2 == 0) return "interrupt but no used buffer";
    if (!(vmmio_isr_bits[si] & 1)) {
        snprintf(msg, msz, "handler saw InterruptStatus %x (bit 0 clear)", vmmio_isr_bits[si]);
        return msg;
    }
    if (all_zero(b + 2 * RNG_LEN, len2) || !memcmp(b + 2 * RNG_LEN, r0, len2 < l0 ? len2 : l0))
        return "interrupt-driven read: zero or repeated bytes";
    if (!vdev_reset(d)) return "Status does not read 0 after reset";
    snprintf(info, isz, "%lx v%u feat=%lx len=%u/%u/%u isr=%x irqs=%u(%s)", s->base, d->version, d->features, l0, l1,
             len2, isr, irqs, trig(s));
    return NULL;
}

static void test_virtio_entropy(void)
{
    uint64_t want = 1;
    cmdline_u64("ventropy", &want);
    unsigned n = 0;
    while (vmmio_find(VIRTIO_ID_ENTROPY, n)) n++;
    if (n != want) return test_fail("%u entropy devices, expected ventropy=%lu", n, want);
    char msg[160], info[160], all[200];
    size_t o = 0;
    all[0] = 0;
    for (unsigned i = 0; i < n; i++) {
        struct vmmio_slot *s = vmmio_find(VIRTIO_ID_ENTROPY, i);
        const char *e = entropy_one(s, msg, sizeof msg, info, sizeof info);
        if (e) return test_fail("device %lx: %s", s->base, e);
        if (o + 2 < sizeof all) o += (size_t)snprintf(all + o, sizeof all - o, "%s%s", i ? "; " : "", info);
    }
    test_pass("n=%u %s", n, all);
}
GUEST_TEST(virtio_entropy, test_virtio_entropy, TEST_NORMAL, "virtio-entropy: init, polling, interrupt");
