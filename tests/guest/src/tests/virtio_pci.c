/* virtio over PCI (virtio 1.2 §4.1, modern). Expectations come from the runner's device set:
 *   virtio_pci          discovery on bus 0: vendor 1AF4, device 0x1040+type (or transitional
 *                       0x1000-0x103f with subsystem id = type); count = vpci=N, types =
 *                       vpci_ids=a,b,... (multiset); vpci_modern=1: no transitional ids; each has
 *                       the common/notify/ISR structures (+ device config for blk/console) in
 *                       memory BARs that are non-zero, below 4 GiB, size-aligned, outside RAM and
 *                       not overlapping; notify_off_multiplier 0 or a power of 2 >= 2; MSI-X
 *                       with >= 2 entries (unless vpci_msix=0); revision >= 1 for 0x104x ids
 *   virtio_pci_entropy  per entropy device (ventropy=N): init with MSI-X off, two buffers by
 *                       polling, ISR status bit 0 then 0 (read clears), reset; init with MSI-X
 *                       on (queue vector 1, read back), one buffer by MSI-X interrupt, reset
 *   virtio_pci_msix     every virtio-pci function: config vector 0, queue i -> entry i+1 (read
 *                       back), an interrupt per exercised queue on its own IDT vector (entropy:
 *                       a buffer, blk: a read, console: a transmit, never on receiveq's vector);
 *                       an out-of-range vector reads back 0xFFFF; masked entry: no delivery,
 *                       PBA bit set, delivered on unmask, PBA bit clear
 *   virtio_pci_intx     first entropy device without MSI-X: Interrupt Pin 1-4, GSI from the
 *                       Interrupt Line (ISA IRQ via the MADT overrides, or >= 16: the GSI itself,
 *                       active low; vpci_intx_gsi=N overrides), level IOAPIC entry; with Command.InterruptDisable no delivery but
 *                       Status.Interrupt set; clearing it delivers; the handler's ISR read
 *                       deasserts; a second buffer interrupts again
 * virtio_pci_blk / virtio_pci_console live next to their MMIO twins (virtio_blk.c,
 * virtio_console.c). */
#include "virtio.h"

#define RNG_LEN 64

static bool all_zero(const uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (b[i]) return false;
    return true;
}

static const char *type_name(uint32_t t)
{
    switch (t) {
    case VIRTIO_ID_NET: return "net";
    case VIRTIO_ID_BLOCK: return "blk";
    case VIRTIO_ID_CONSOLE: return "console";
    case VIRTIO_ID_ENTROPY: return "entropy";
    default: return "?";
    }
}

/* ---- discovery -------------------------------------------------------------------------- */
static bool in_ram(uint64_t a, uint64_t size)
{
    const struct hvm_start_info *si = start_info();
    if (!si || si->version < 1 || !si->memmap_paddr) return false;
    const struct hvm_memmap_entry *m = (const struct hvm_memmap_entry *)(uintptr_t)si->memmap_paddr;
    for (unsigned i = 0; i < si->memmap_entries && i < 128; i++)
        if (m[i].type == 1 && m[i].addr < a + size && a < m[i].addr + m[i].size) return true;
    return false;
}

static const char *check_fn(struct vpci_fn *f, char *msg, size_t msz)
{
    if (f->err[0]) return snprintf(msg, msz, "%s", f->err), msg;
    if (!f->transitional && f->rev < 1) return snprintf(msg, msz, "modern id %04x with revision %u", f->device, f->rev), msg;
    if (cmdline_get("vpci_modern") && f->transitional)
        return snprintf(msg, msz, "transitional id %04x, expected a modern-only device", f->device), msg;
    if (f->type == 0 || f->type > 63) return snprintf(msg, msz, "device type %u", f->type), msg;
    static const unsigned minlen[5] = {0, 0x38, 2, 1, 0};
    for (unsigned t = 1; t <= 4; t++) {
        bool need = t != VPCI_CAP_DEVICE || f->type == VIRTIO_ID_BLOCK || f->type == VIRTIO_ID_CONSOLE;
        if (!f->cap[t].present) {
            if (need) return snprintf(msg, msz, "no virtio_pci_cap cfg_type %u", t), msg;
            continue;
        }
        if (f->cap[t].len < minlen[t]) return snprintf(msg, msz, "cfg_type %u length %u < %u", t, f->cap[t].len, minlen[t]), msg;
        if (!f->cap[t].addr) return snprintf(msg, msz, "cfg_type %u not addressable", t), msg;
    }
    uint32_t m = f->notify_mult;
    if (m == 1 || (m & (m - 1))) return snprintf(msg, msz, "notify_off_multiplier %u", m), msg;
    uint64_t want_msix = 1;
    cmdline_u64("vpci_msix", &want_msix);
    if (want_msix) {
        if (!f->msix_pos) return "no MSI-X capability";
        if (f->msix_size < 2) return snprintf(msg, msz, "MSI-X table size %u", f->msix_size), msg;
        if (!f->msix_table || !f->msix_pba) return "MSI-X table/PBA not addressable";
    }
    for (unsigned b = 0; b < 6; b++) {
        if (f->bar_io[b] || !f->bar_size[b]) continue;
        uint64_t a = f->bar[b], sz = f->bar_size[b];
        if (!a) return snprintf(msg, msz, "BAR%u is 0", b), msg;
        if (a + sz > 0x100000000ull) return snprintf(msg, msz, "BAR%u %lx above 4 GiB", b, a), msg;
        if (a & (sz - 1)) return snprintf(msg, msz, "BAR%u %lx not aligned to its size %lx", b, a, sz), msg;
        if (a < 0x100000 || in_ram(a, sz)) return snprintf(msg, msz, "BAR%u %lx+%lx overlaps RAM", b, a, sz), msg;
        if (a + sz > 0xfec00000ull) return snprintf(msg, msz, "BAR%u %lx+%lx reaches the IOAPIC/LAPIC area", b, a, sz), msg;
    }
    uint16_t cmd = pci_cfg_read16(f->bus, f->dev, f->fn, 4);
    if ((cmd & (PCI_CMD_MEM | PCI_CMD_MASTER)) != (PCI_CMD_MEM | PCI_CMD_MASTER))
        return snprintf(msg, msz, "Command %04x: memory decoding / bus mastering did not stick", cmd), msg;
    return NULL;
}

static bool bars_overlap(const struct vpci_fn *a, const struct vpci_fn *b)
{
    for (unsigned i = 0; i < 6; i++)
        for (unsigned j = 0; j < 6; j++) {
            if (a->bar_io[i] || b->bar_io[j] || !a->bar_size[i] || !b->bar_size[j]) continue;
            if (a == b && i == j) continue;
            if (a->bar[i] < b->bar[j] + b->bar_size[j] && b->bar[j] < a->bar[i] + a->bar_size[i]) return true;
        }
    return false;
}

static void test_virtio_pci(void)
{
    unsigned n = vpci_discover();
    struct vpci_fn *F[VPCI_MAX_FNS];
    for (unsigned i = 0; i < n; i++) F[i] = vpci_at(i);
    unsigned fixed = 0;
    for (unsigned i = 0; i < n; i++) {
        char bars[120];
        size_t o = 0;
        bars[0] = 0;
        for (unsigned b = 0; b < 6; b++)
            if (F[i]->bar_size[b] && o + 30 < sizeof bars) {
                o += (size_t)snprintf(bars + o, sizeof bars - o, " bar%u=%lx/%lx%s%s", b, F[i]->bar[b], F[i]->bar_size[b],
                                      F[i]->bar_io[b] ? "io" : F[i]->bar_64[b] ? "m64" : "m32", F[i]->bar_fixed[b] ? "*" : "");
                fixed += F[i]->bar_fixed[b];
            }
        printk("INFO virtio-pci %s %04x:%04x rev %u type %u (%s) pin %u line %u caps", vpci_name(F[i]), F[i]->vendor,
               F[i]->device, F[i]->rev, F[i]->type, type_name(F[i]->type), F[i]->int_pin, F[i]->int_line);
        for (unsigned t = 1; t <= 5; t++)
            if (F[i]->cap[t].present)
                printk(" %u:bar%u+%x/%x", t, F[i]->cap[t].bar, F[i]->cap[t].off, F[i]->cap[t].len);
        printk(" mult=%u msix=%u(t bar%u+%x, pba bar%u+%x)%s%s%s\n", F[i]->notify_mult, F[i]->msix_pos ? F[i]->msix_size : 0,
               F[i]->msix_table_bar, F[i]->msix_table_off, F[i]->msix_pba_bar, F[i]->msix_pba_off, bars,
               F[i]->err[0] ? " err: " : "", F[i]->err);
    }
    uint64_t want_n;
    if (!cmdline_u64("vpci", &want_n)) return test_fail("no vpci=N expectation on the command line");
    if (n != want_n) return test_fail("found %u virtio-pci functions on bus 0, expected vpci=%lu", n, want_n);
    unsigned ids[64] = {0};
    char msg[160];
    for (unsigned i = 0; i < n; i++) {
        const char *e = check_fn(F[i], msg, sizeof msg);
        if (e) return test_fail("%s (%04x, %s): %s", vpci_name(F[i]), F[i]->device, type_name(F[i]->type), e);
        for (unsigned j = 0; j < i; j++)
            if (bars_overlap(F[i], F[j])) return test_fail("BARs of %s and %s overlap", vpci_name(F[j]), vpci_name(F[i]));
        if (bars_overlap(F[i], F[i])) return test_fail("BARs of %s overlap each other", vpci_name(F[i]));
        if (F[i]->type < 64) ids[F[i]->type]++;
    }
    const char *l = cmdline_get("vpci_ids");
    if (l) {
        unsigned want[64] = {0};
        while (*l && *l != ' ') {
            unsigned v = 0;
            while (*l >= '0' && *l <= '9') v = v * 10 + (unsigned)(*l++ - '0');
            if (v < 64) want[v]++;
            if (*l == ',') l++;
            else break;
        }
        for (unsigned i = 0; i < 64; i++)
            if (want[i] != ids[i]) return test_fail("%u functions of type %u, expected %u (vpci_ids)", ids[i], i, want[i]);
    }
    char d[200];
    size_t o = 0;
    d[0] = 0;
    for (unsigned i = 0; i < n && o + 40 < sizeof d; i++)
        o += (size_t)snprintf(d + o, sizeof d - o, " %s=%04x/%s/msix%u", vpci_name(F[i]), F[i]->device, type_name(F[i]->type),
                              F[i]->msix_pos ? F[i]->msix_size : 0);
    test_pass("n=%u bars_assigned_by_guest=%u%s", n, fixed, d);
}
GUEST_TEST(virtio_pci, test_virtio_pci, TEST_NORMAL, "virtio-pci discovery: ids, capabilities, BARs, MSI-X");

/* ---- interrupts ------------------------------------------------------------------------- */
static unsigned fn_index(const struct vpci_fn *f)
{
    unsigned n = vpci_discover();
    for (unsigned k = 0; k < n; k++)
        if (vpci_at(k) == f) return k;
    return ~0u;
}

/* IDT vector of (function, MSI-X entry): 4 entries per function from VEC_VPCI_MSIX_BASE */
static unsigned msix_vec(const struct vpci_fn *f, unsigned entry)
{
    unsigned k = fn_index(f);
    if (k >= 12 || entry >= 4) return 0;
    return VEC_VPCI_MSIX_BASE + 4 * k + entry;
}

/* programs entries 0..n-1 of f to their vectors (handlers count only) and enables MSI-X */
static bool msix_setup(struct vpci_fn *f, unsigned n, bool masked_entry1)
{
    if (!f->msix_table || f->msix_size < n) return false;
    for (unsigned e = 0; e < n; e++) {
        unsigned v = msix_vec(f, e);
        if (!v) return false;
        irq_set_handler(v, NULL, EOI_LAPIC);
        vpci_msix_entry(f, e, v, masked_entry1 && e == 1);
    }
    vpci_msix_enable(f, true);
    return true;
}

static void msix_off(struct vpci_fn *f, unsigned n)
{
    for (unsigned e = 0; e < n && e < f->msix_size; e++) vpci_msix_mask(f, e, true);
    vpci_msix_enable(f, false);
}

/* ---- entropy ---------------------------------------------------------------------------- */
static const char *entropy_one(struct vpci_fn *f, char *msg, size_t msz, char *info, size_t isz)
{
    static struct vdev dev;
    struct vdev *d = &dev;
    vpci_msix_enable(f, false);
    vpci_intx(f, false);
    if (!vpci_init(d, f, 0, 1, 16, NULL, VIRTIO_MSI_NO_VECTOR)) return snprintf(msg, msz, "init: %s", d->err), msg;
    uint8_t *b = dma_alloc(4 * RNG_LEN, 64);
    if (!b) return "out of DMA memory";
    struct vbuf v0 = {(uintptr_t)b, RNG_LEN, true}, v1 = {(uintptr_t)(b + RNG_LEN), RNG_LEN, true};
    vq_add(&d->q[0], &v0, 1);
    vq_add(&d->q[0], &v1, 1);
    vq_kick(d, 0);
    uint32_t id0, len0, id1, len1;
    if (!vq_wait(d, 0, 2000000, &id0, &len0) || !vq_wait(d, 0, 2000000, &id1, &len1))
        return snprintf(msg, msz, "used ring idx %u after 2 s (2 buffers posted, status %x)", d->q[0].used_hdr[1],
                        vdev_status(d)), msg;
    if (len0 == 0 || len0 > RNG_LEN || len1 == 0 || len1 > RNG_LEN)
        return snprintf(msg, msz, "used lengths %u/%u (buffers of %u)", len0, len1, RNG_LEN), msg;
    if (!((id0 == 0 && id1 == 1) || (id0 == 1 && id1 == 0)))
        return snprintf(msg, msz, "used ids %u/%u, expected heads 0 and 1", id0, id1), msg;
    uint8_t *r0 = id0 == 0 ? b : b + RNG_LEN, *r1 = id0 == 0 ? b + RNG_LEN : b;
    uint32_t l0 = id0 == 0 ? len0 : len1, l1 = id0 == 0 ? len1 : len0;
    if (all_zero(r0, l0) || all_zero(r1, l1)) return "random bytes all zero";
    if (!memcmp(r0, r1, l0 < l1 ? l0 : l1)) return "two reads returned identical bytes";
    /* ISR status (§4.1.4.5): queue interrupt bit set, and the read clears it */
    uint8_t isr = mmio_read8(d->isr), isr2 = mmio_read8(d->isr);
    if (!(isr & 1)) return snprintf(msg, msz, "ISR status %x after used buffers (bit 0 clear)", isr), msg;
    if (isr2 & 1) return snprintf(msg, msz, "ISR status %x on the second read (read must clear)", isr2), msg;
    if (!vdev_reset(d)) return "device_status does not read 0 after reset";
    /* MSI-X: queue 0 -> entry 1 */
    if (!f->msix_pos) {
        snprintf(info, isz, "%s feat=%lx len=%u/%u isr=%x (no MSI-X)", vpci_name(f), d->features, l0, l1, isr);
        return NULL;
    }
    if (!msix_setup(f, 2, false)) return snprintf(msg, msz, "MSI-X set-up (table size %u)", f->msix_size), msg;
    uint16_t qv[1] = {1};
    if (!vpci_init(d, f, 0, 1, 16, qv, 0)) {
        msix_off(f, 2);
        return snprintf(msg, msz, "init with MSI-X: %s", d->err), msg;
    }
    if (d->qvec[0] != 1 || d->cfgvec != 0) {
        msix_off(f, 2);
        vdev_reset(d);
        return snprintf(msg, msz, "queue_msix_vector/config_msix_vector read back %x/%x, wrote 1/0", d->qvec[0], d->cfgvec), msg;
    }
    unsigned vec = msix_vec(f, 1);
    uint32_t c0 = irq_count[vec];
    struct vbuf v2 = {(uintptr_t)(b + 2 * RNG_LEN), RNG_LEN, true};
    vq_add(&d->q[0], &v2, 1);
    vq_kick(d, 0);
    bool got = WAIT_US(irq_count[vec] != c0, 2000000);
    uint32_t id2 = 0, len2 = 0;
    bool used = vq_wait(d, 0, 100000, &id2, &len2);
    uint32_t irqs = irq_count[vec] - c0;
    msix_off(f, 2);
    vdev_reset(d);
    if (!got) return snprintf(msg, msz, "no MSI-X interrupt (vector 0x%x) within 2 s; used=%d", vec, used), msg;
    if (!used || len2 == 0) return "interrupt but no used buffer";
    if (all_zero(b + 2 * RNG_LEN, len2) || !memcmp(b + 2 * RNG_LEN, r0, len2 < l0 ? len2 : l0))
        return "interrupt-driven read: zero or repeated bytes";
    snprintf(info, isz, "%s feat=%lx len=%u/%u/%u isr=%x msix_irqs=%u", vpci_name(f), d->features, l0, l1, len2, isr, irqs);
    return NULL;
}

static void test_virtio_pci_entropy(void)
{
    uint64_t want = 1;
    cmdline_u64("ventropy", &want);
    unsigned n = 0;
    while (vpci_find(VIRTIO_ID_ENTROPY, n)) n++;
    if (n != want) return test_fail("%u entropy functions, expected ventropy=%lu", n, want);
    char msg[160], info[160], all[200];
    size_t o = 0;
    all[0] = 0;
    for (unsigned i = 0; i < n; i++) {
        struct vpci_fn *f = vpci_find(VIRTIO_ID_ENTROPY, i);
        const char *e = entropy_one(f, msg, sizeof msg, info, sizeof info);
        if (e) return test_fail("%s: %s", vpci_name(f), e);
        if (o + 2 < sizeof all) o += (size_t)snprintf(all + o, sizeof all - o, "%s%s", i ? "; " : "", info);
    }
    test_pass("n=%u %s", n, all);
}
GUEST_TEST(virtio_pci_entropy, test_virtio_pci_entropy, TEST_NORMAL, "virtio-pci entropy: polling, ISR, MSI-X");

/* ---- MSI-X ------------------------------------------------------------------------------ */
/* one request on the function's natural queue; returns the queue index used, -1 on error */
static int exercise(struct vdev *d, uint8_t *buf)
{
    switch (d->pci->type) {
    case VIRTIO_ID_ENTROPY: {
        struct vbuf v = {(uintptr_t)buf, 32, true};
        vq_add(&d->q[0], &v, 1);
        vq_kick(d, 0);
        return 0;
    }
    case VIRTIO_ID_BLOCK: {
        uint8_t *hdr = buf, *data = buf + 64, *st = buf + 64 + 512;
        memset(hdr, 0, 16); /* T_IN, sector 0 */
        *st = 0xff;
        struct vbuf v[3] = {{(uintptr_t)hdr, 16, false}, {(uintptr_t)data, 512, true}, {(uintptr_t)st, 1, true}};
        vq_add(&d->q[0], v, 3);
        vq_kick(d, 0);
        return 0;
    }
    case VIRTIO_ID_CONSOLE: {
        int l = snprintf((char *)buf, 64, "qvm-vcon-msix\n");
        struct vbuf v = {(uintptr_t)buf, (uint32_t)l, false};
        vq_add(&d->q[1], &v, 1); /* transmitq */
        vq_kick(d, 1);
        return 1;
    }
    default: return -1;
    }
}

static unsigned nqueues_of(uint32_t type) { return type == VIRTIO_ID_CONSOLE ? 2 : 1; }

static const char *msix_one(struct vpci_fn *f, uint8_t *buf, char *msg, size_t msz, char *info, size_t isz)
{
    static struct vdev dev;
    struct vdev *d = &dev;
    unsigned nq = nqueues_of(f->type), nent = nq + 1;
    /* one entry per queue + config if the table allows, else (like Linux) the queues share entry 1 */
    bool shared = f->msix_size < nent;
    if (shared) nent = 2;
    if (f->msix_size < nent) return snprintf(msg, msz, "MSI-X table size %u < 2", f->msix_size), msg;
    vpci_intx(f, false);
    if (!msix_setup(f, nent, false)) return "MSI-X set-up failed";
    uint16_t qv[VDEV_MAX_QUEUES];
    for (unsigned q = 0; q < nq; q++) qv[q] = (uint16_t)(shared ? 1 : q + 1);
    bool ok = vpci_init(d, f, 0, nq, 16, qv, 0);
    if (!ok) {
        msix_off(f, nent);
        return snprintf(msg, msz, "init: %s", d->err), msg;
    }
    for (unsigned q = 0; q < nq; q++)
        if (d->qvec[q] != qv[q]) {
            msix_off(f, nent);
            vdev_reset(d);
            return snprintf(msg, msz, "queue %u: queue_msix_vector reads %x, wrote %x%s", q, d->qvec[q], qv[q],
                            d->qvec[q] == VIRTIO_MSI_NO_VECTOR ? " (device refused)" : ""), msg;
        }
    if (d->cfgvec != 0) {
        msix_off(f, nent);
        vdev_reset(d);
        return snprintf(msg, msz, "config_msix_vector reads %x, wrote 0", d->cfgvec), msg;
    }
    uint32_t c[4];
    for (unsigned e = 0; e < nent; e++) c[e] = irq_count[msix_vec(f, e)];
    int q = exercise(d, buf);
    unsigned qe = q < 0 ? 1 : qv[q];
    unsigned want = msix_vec(f, qe);
    bool got = q >= 0 && WAIT_US(irq_count[want] != c[qe], 2000000);
    bool used = q >= 0 && vq_wait(d, (unsigned)q, 200000, NULL, NULL);
    udelay(20000); /* anything else would show up now */
    uint32_t d_irq[4];
    for (unsigned e = 0; e < nent; e++) d_irq[e] = irq_count[msix_vec(f, e)] - c[e];
    msix_off(f, nent);
    vdev_reset(d);
    if (q < 0) return "no way to exercise this device type";
    if (!got) return snprintf(msg, msz, "queue %d: no interrupt on vector 0x%x (entry %u) within 2 s, used=%d", q, want, qe, used), msg;
    if (!used) return snprintf(msg, msz, "queue %d: interrupt but no used buffer", q), msg;
    for (unsigned qq = 0; qq < nq && !shared; qq++)
        if ((int)qq != q && d_irq[qq + 1])
            return snprintf(msg, msz, "queue %u's vector fired %u times, only queue %d was used", qq, d_irq[qq + 1], q), msg;
    snprintf(info, isz, "%s:%s q%d->e%u(0x%x)x%u%s cfg=%u", vpci_name(f), type_name(f->type), q, qe, want, d_irq[qe],
             shared ? "(shared)" : "", d_irq[0]);
    return NULL;
}

/* masked entry -> pending bit -> delivery on unmask (on the first entropy function, or any) */
static const char *msix_mask_test(struct vpci_fn *f, uint8_t *buf, char *msg, size_t msz, char *info, size_t isz)
{
    static struct vdev dev;
    struct vdev *d = &dev;
    unsigned nq = nqueues_of(f->type);
    /* a vector number past the table must be refused (read back 0xFFFF) */
    if (!msix_setup(f, 2, true)) return "MSI-X set-up failed";
    uint16_t qv[VDEV_MAX_QUEUES] = {f->msix_size, f->msix_size};
    if (!vpci_init(d, f, 0, nq, 16, qv, VIRTIO_MSI_NO_VECTOR)) {
        msix_off(f, 2);
        return snprintf(msg, msz, "init: %s", d->err), msg;
    }
    uint16_t refused = d->qvec[0];
    vdev_reset(d);
    if (refused != VIRTIO_MSI_NO_VECTOR) {
        msix_off(f, 2);
        return snprintf(msg, msz, "queue_msix_vector %u (table size %u) reads back %x, expected ffff", f->msix_size,
                        f->msix_size, refused), msg;
    }
    /* every queue on entry 1, masked */
    for (unsigned q = 0; q < nq; q++) qv[q] = 1;
    if (!vpci_init(d, f, 0, nq, 16, qv, VIRTIO_MSI_NO_VECTOR) || d->qvec[0] != 1) {
        msix_off(f, 2);
        vdev_reset(d);
        return snprintf(msg, msz, "init (entry 1): %s qvec=%x", d->err, d->qvec[0]), msg;
    }
    unsigned vec = msix_vec(f, 1);
    uint32_t c0 = irq_count[vec];
    bool pend0 = vpci_msix_pending(f, 1);
    int q = exercise(d, buf);
    bool used = q >= 0 && vq_wait(d, (unsigned)q, 2000000, NULL, NULL);
    bool pend = WAIT_US(vpci_msix_pending(f, 1), 100000);
    udelay(20000);
    uint32_t while_masked = irq_count[vec] - c0;
    vpci_msix_mask(f, 1, false);
    bool got = WAIT_US(irq_count[vec] != c0 + while_masked, 2000000);
    bool pend_after = vpci_msix_pending(f, 1);
    msix_off(f, 2);
    vdev_reset(d);
    if (!used) return "masked: request not completed";
    if (pend0) return "PBA bit set before any interrupt";
    if (while_masked) return snprintf(msg, msz, "%u interrupts delivered while the entry was masked", while_masked), msg;
    if (!pend) return "masked: PBA pending bit not set";
    if (!got) return "no interrupt after unmasking the pending entry";
    if (pend_after) return "PBA pending bit still set after delivery";
    snprintf(info, isz, "mask %s: refused=%x pending->delivered", vpci_name(f), refused);
    return NULL;
}

static void test_virtio_pci_msix(void)
{
    unsigned n = vpci_discover();
    if (!n) return test_fail("no virtio-pci functions");
    uint8_t *buf = dma_alloc(4096, 4096);
    if (!buf) return test_fail("out of DMA memory");
    char msg[160], info[120], out[400];
    size_t o = 0;
    out[0] = 0;
    struct vpci_fn *mask_fn = NULL;
    for (unsigned i = 0; i < n; i++) {
        struct vpci_fn *f = vpci_at(i);
        if (!f->msix_pos) return test_fail("%s: no MSI-X capability", vpci_name(f));
        if (f->type != VIRTIO_ID_ENTROPY && f->type != VIRTIO_ID_BLOCK && f->type != VIRTIO_ID_CONSOLE) continue;
        const char *e = msix_one(f, buf, msg, sizeof msg, info, sizeof info);
        if (e) return test_fail("%s (%s): %s", vpci_name(f), type_name(f->type), e);
        if (o + 2 < sizeof out) o += (size_t)snprintf(out + o, sizeof out - o, "%s%s", o ? " " : "", info);
        if (!mask_fn || (f->type == VIRTIO_ID_ENTROPY && mask_fn->type != VIRTIO_ID_ENTROPY)) mask_fn = f;
    }
    if (!mask_fn) return test_fail("no function to test masking on");
    const char *e = msix_mask_test(mask_fn, buf, msg, sizeof msg, info, sizeof info);
    if (e) return test_fail("%s: %s", vpci_name(mask_fn), e);
    if (o + 2 < sizeof out) o += (size_t)snprintf(out + o, sizeof out - o, "; %s", info);
    test_pass("%s", out);
}
GUEST_TEST(virtio_pci_msix, test_virtio_pci_msix, TEST_NORMAL, "virtio-pci MSI-X: per-queue vectors, mask/PBA");

/* ---- INTx ------------------------------------------------------------------------------- */
static volatile uint64_t intx_isr_addr;
volatile uint32_t vpci_intx_bits;

static volatile uint8_t intx_seen[4];
static volatile unsigned intx_n;

static void intx_isr(unsigned vec)
{
    (void)vec;
    if (!intx_isr_addr) return;
    uint8_t v = mmio_read8(intx_isr_addr); /* the read deasserts the line */
    vpci_intx_bits |= v;
    if (intx_n < 4) intx_seen[intx_n] = v;
    intx_n++;
}

static void test_virtio_pci_intx(void)
{
    struct vpci_fn *f = vpci_find(VIRTIO_ID_ENTROPY, 0);
    if (!f) return test_fail("no virtio-pci entropy function");
    uint8_t pin = pci_cfg_read8(f->bus, f->dev, f->fn, 0x3d), line = pci_cfg_read8(f->bus, f->dev, f->fn, 0x3c);
    if (pin < 1 || pin > 4) return test_fail("%s: Interrupt Pin %u", vpci_name(f), pin);
    uint64_t g;
    uint16_t flags = 0;
    unsigned gsi;
    const char *how;
    if (cmdline_u64("vpci_intx_gsi", &g)) {
        gsi = (unsigned)g;
        how = "vpci_intx_gsi";
    } else if (line >= 16 && line != 0xff) {
        /* firmware in APIC mode (qvm): the line is the IOAPIC GSI, as the DSDT _PRT routes it
         * (PCI INTx: level, active low) */
        gsi = line;
        flags = 3 << 0;
        how = "line=GSI";
    } else {
        if (line == 0 || line == 0xff) return test_fail("%s: Interrupt Line %u (no IRQ assigned by firmware)", vpci_name(f), line);
        gsi = isa_irq_to_gsi(line, &flags);
        how = "line";
    }
    uint64_t base;
    unsigned ioapin;
    if (!gsi_ioapic(gsi, &base, &ioapin)) return test_fail("GSI %u on no IOAPIC", gsi);
    bool low = ((flags & 3) == 3) || cmdline_get("vpci_intx_low");
    uint32_t lo = VEC_VPCI_INTX | (1u << 15) | (low ? 1u << 13 : 0);

    static struct vdev dev;
    struct vdev *d = &dev;
    vpci_msix_enable(f, false);
    vpci_intx(f, false);
    if (!vpci_init(d, f, 0, 1, 16, NULL, VIRTIO_MSI_NO_VECTOR)) return test_fail("init: %s", d->err);
    uint8_t *b = dma_alloc(2 * RNG_LEN, 64);
    if (!b) return test_fail("out of DMA memory");
    intx_isr_addr = d->isr;
    vpci_intx_bits = 0;
    intx_n = 0;
    irq_set_handler(VEC_VPCI_INTX, intx_isr, EOI_LAPIC);
    ioapic_rte(base, ioapin, lo, lapic_id() << 24);
    uint32_t c0 = irq_count[VEC_VPCI_INTX];
    const char *err = NULL;
    char msg[160];
    /* 1. InterruptDisable set: the device completes, Status.Interrupt is set, nothing delivered */
    struct vbuf v0 = {(uintptr_t)b, RNG_LEN, true}, v1 = {(uintptr_t)(b + RNG_LEN), RNG_LEN, true};
    vq_add(&d->q[0], &v0, 1);
    vq_kick(d, 0);
    bool used = vq_wait(d, 0, 2000000, NULL, NULL);
    udelay(20000);
    uint32_t early = irq_count[VEC_VPCI_INTX] - c0;
    uint16_t status = pci_cfg_read16(f->bus, f->dev, f->fn, 6);
    /* 2. clear InterruptDisable: the pending interrupt is delivered */
    vpci_intx(f, true);
    bool got1 = WAIT_US(irq_count[VEC_VPCI_INTX] != c0, 2000000);
    udelay(5000);
    uint32_t after1 = irq_count[VEC_VPCI_INTX] - c0;
    uint16_t status1 = pci_cfg_read16(f->bus, f->dev, f->fn, 6);
    uint32_t bits1 = vpci_intx_bits;
    /* 3. another buffer: another interrupt */
    vq_add(&d->q[0], &v1, 1);
    vq_kick(d, 0);
    bool got2 = WAIT_US(irq_count[VEC_VPCI_INTX] - c0 > after1, 2000000);
    bool used2 = vq_wait(d, 0, 200000, NULL, NULL);
    udelay(10000);
    uint32_t total = irq_count[VEC_VPCI_INTX] - c0;
    udelay(20000); /* a line left asserted would re-interrupt after every EOI */
    uint32_t settled = irq_count[VEC_VPCI_INTX] - c0;
    ioapic_rte(base, ioapin, lo | (1u << 16), lapic_id() << 24);
    vpci_intx(f, false);
    vdev_reset(d);
    intx_isr_addr = 0;
    if (!used) err = "request not completed";
    else if (early) err = (snprintf(msg, sizeof msg, "%u interrupts with Command.InterruptDisable set", early), msg);
    else if (!(status & 0x08)) err = (snprintf(msg, sizeof msg, "Status %04x: Interrupt Status bit clear while pending", status), msg);
    else if (!got1) err = (snprintf(msg, sizeof msg, "no interrupt on GSI %u (pin %c, %s) after clearing InterruptDisable", gsi, 'A' + pin - 1, how), msg);
    else if (!(bits1 & 1)) err = (snprintf(msg, sizeof msg, "handler read ISR %x (bit 0 clear)", bits1), msg);
    else if (status1 & 0x08) err = (snprintf(msg, sizeof msg, "Status %04x: Interrupt Status still set after the ISR read", status1), msg);
    else if (after1 > 2) err = (snprintf(msg, sizeof msg, "%u interrupts for one event (line not deasserted by the ISR read?) isr reads %x %x %x %x", after1, intx_seen[0], intx_seen[1], intx_seen[2], intx_seen[3]), msg);
    else if (!got2 || !used2) err = (snprintf(msg, sizeof msg, "second buffer: interrupt=%d used=%d", got2, used2), msg);
    else if (total != settled) err = (snprintf(msg, sizeof msg, "interrupts keep arriving after the ISR reads (%u -> %u in 20 ms)", total, settled), msg);
    if (err) return test_fail("%s: %s", vpci_name(f), err);
    unsigned spurious = 0;
    for (unsigned i = 0; i < intx_n && i < 4; i++) spurious += intx_seen[i] == 0;
    test_pass("%s pin %c line %u -> GSI %u (%s, level/%s) irqs=%u (isr 0: %u) isr=%x", vpci_name(f), 'A' + pin - 1, line,
              gsi, how, low ? "low" : "high", total, spurious, bits1);
}
GUEST_TEST(virtio_pci_intx, test_virtio_pci_intx, TEST_NORMAL, "virtio-pci INTx (pin/line, IOAPIC level)");
