/* qvm test guest: virtio-mmio discovery (ACPI LNRO0005 / command line), the init sequence over
 * MMIO and PCI (common configuration), split virtqueues, virtio-mmio interrupt routing. Ring 3
 * except vmmio_isr. PCI discovery and MSI-X: virtio_pci.c. See virtio.h and docs/testing.md. */
#include "virtio.h"

/* ---- DMA memory ------------------------------------------------------------------------- */
#define DMA_POOL_MAX (8u << 20)
extern char __image_end[];
static uint64_t dma_next, dma_limit;

void *dma_alloc(size_t size, size_t align)
{
    if (!dma_next) {
        dma_next = ((uint64_t)(uintptr_t)__image_end + 0xffff) & ~0xffffull;
        dma_limit = dma_next + DMA_POOL_MAX;
    }
    if (align < 16) align = 16;
    uint64_t a = (dma_next + align - 1) & ~(uint64_t)(align - 1);
    if (a + size > dma_limit) return NULL;
    dma_next = a + size;
    memset((void *)(uintptr_t)a, 0, size);
    return (void *)(uintptr_t)a;
}

uint32_t fnv1a32(const void *p, size_t n)
{
    const uint8_t *b = p;
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 16777619u;
    return h;
}

/* ---- ACPI: bounded AML scan for LNRO0005 devices ------------------------------------------ */
static struct vmmio_slot slots[VMMIO_MAX_SLOTS];
static unsigned nslots;
static bool discovered;

/* PkgLength (ACPI 6.4 §20.2.4) at p (limit end): *used = encoding bytes. 0 on malformed. */
static uint32_t aml_pkglen(const uint8_t *p, const uint8_t *end, unsigned *used)
{
    if (p >= end) return 0;
    unsigned n = p[0] >> 6;
    if (p + 1 + n > end) return 0;
    uint32_t len = n ? (p[0] & 0x0f) : (p[0] & 0x3f);
    for (unsigned i = 0; i < n; i++) len |= (uint32_t)p[1 + i] << (4 + 8 * i);
    *used = 1 + n;
    return len;
}

/* integer data object: ZeroOp/OneOp/OnesOp/Byte/Word/DWord/QWord prefix */
static bool aml_int(const uint8_t *p, const uint8_t *end, uint64_t *v, unsigned *used)
{
    if (p >= end) return false;
    unsigned n;
    switch (p[0]) {
    case 0x00: *v = 0; *used = 1; return true;
    case 0x01: *v = 1; *used = 1; return true;
    case 0xff: *v = ~0ull; *used = 1; return true;
    case 0x0a: n = 1; break;
    case 0x0b: n = 2; break;
    case 0x0c: n = 4; break;
    case 0x0e: n = 8; break;
    default: return false;
    }
    if (p + 1 + n > end) return false;
    uint64_t x = 0;
    for (unsigned i = 0; i < n; i++) x |= (uint64_t)p[1 + i] << (8 * i);
    *v = x;
    *used = 1 + n;
    return true;
}

/* "NAME" followed by op within [p, end): returns the position after the name, or NULL */
static const uint8_t *aml_find_name(const uint8_t *p, const uint8_t *end, const char *name)
{
    for (; p + 5 <= end; p++)
        if (!memcmp(p, name, 4)) return p + 4;
    return NULL;
}

/* _CRS buffer: Buffer (0x11) PkgLength BufferSize bytes... -> resource descriptors */
static bool parse_crs(const uint8_t *p, const uint8_t *end, struct vmmio_slot *s)
{
    if (p >= end || p[0] != 0x11) return false;
    unsigned u;
    uint32_t plen = aml_pkglen(p + 1, end, &u);
    if (!plen) return false;
    const uint8_t *bend = p + 1 + plen;
    if (bend > end) return false;
    const uint8_t *q = p + 1 + u;
    uint64_t bsize;
    unsigned u2;
    if (!aml_int(q, bend, &bsize, &u2)) return false;
    q += u2;
    if (q + bsize < bend) bend = q + bsize;
    bool mem = false;
    for (int guard = 0; q < bend && guard < 32; guard++) {
        uint8_t tag = q[0];
        if (!(tag & 0x80)) { /* small descriptor */
            unsigned type = (tag >> 3) & 0xf, len = tag & 7;
            if (type == 0xf) break; /* end tag */
            if (type == 0x4 && len >= 2 && q + 3 <= bend && !s->has_irq) { /* IRQ: mask of ISA lines */
                uint16_t mask = (uint16_t)(q[1] | (q[2] << 8));
                for (unsigned i = 0; i < 16; i++)
                    if (mask & (1u << i)) {
                        s->gsi = i;
                        s->has_irq = true;
                        uint8_t fl = len >= 3 ? q[3] : 0x01; /* default edge, high */
                        s->level = !(fl & 1);
                        s->active_low = (fl & 8) != 0;
                        break;
                    }
            }
            q += 1 + len;
            continue;
        }
        if (q + 3 > bend) return false;
        unsigned len = (unsigned)(q[1] | (q[2] << 8));
        if (q + 3 + len > bend) return false;
        if (tag == 0x86 && len >= 9) { /* Memory32Fixed */
            s->base = (uint32_t)(q[4] | q[5] << 8 | q[6] << 16 | (uint32_t)q[7] << 24);
            s->size = (uint32_t)(q[8] | q[9] << 8 | q[10] << 16 | (uint32_t)q[11] << 24);
            mem = true;
        } else if (tag == 0x89 && len >= 6 && q[4] >= 1 && !s->has_irq) { /* Extended Interrupt */
            uint8_t fl = q[3];
            s->level = !(fl & 2);
            s->active_low = (fl & 4) != 0;
            s->gsi = (uint32_t)(q[5] | q[6] << 8 | q[7] << 16 | (uint32_t)q[8] << 24);
            s->has_irq = true;
        }
        q += 3 + len;
    }
    return mem;
}

static const uint8_t *dsdt_of(const struct acpi_header *fadt)
{
    const uint8_t *f = (const uint8_t *)fadt;
    uint64_t dsdt = *(const uint32_t *)(f + 40);
    if (fadt->length >= 148) {
        uint64_t x;
        memcpy(&x, f + 140, 8);
        if (x) dsdt = x;
    }
    return acpi_table_sane(dsdt) ? (const uint8_t *)(uintptr_t)dsdt : NULL;
}

static void scan_table(const struct acpi_header *h)
{
    static const char hid[] = "LNRO0005";
    const uint8_t *t = (const uint8_t *)h, *end = t + h->length;
    for (const uint8_t *p = t + sizeof(*h); p + 10 <= end && nslots < VMMIO_MAX_SLOTS; p++) {
        /* _HID as a string: 0x0D "LNRO0005" 0x00 */
        if (p[0] != 0x0d || memcmp(p + 1, hid, 8) || p[9] != 0) continue;
        /* the enclosing Device (0x5B 0x82 PkgLength NameSeg ...): nearest one before us whose
         * package covers this position (bounded look-back) */
        const uint8_t *dev_start = NULL, *dev_end = NULL;
        for (const uint8_t *b = p - 2; b >= t + sizeof(*h) && p - b < 128; b--) {
            if (b[0] != 0x5b || b[1] != 0x82) continue;
            unsigned u;
            uint32_t len = aml_pkglen(b + 2, end, &u);
            if (len && b + 2 + len > p && b + 2 + len <= end) {
                dev_start = b;
                dev_end = b + 2 + len;
                break;
            }
        }
        if (!dev_end) {
            printk("INFO virtio: LNRO0005 at DSDT+%lx outside a Device package\n", (uint64_t)(p - t));
            continue;
        }
        struct vmmio_slot s;
        memset(&s, 0, sizeof s);
        s.uid = -1;
        s.source = "acpi";
        const uint8_t *u = aml_find_name(dev_start, dev_end, "_UID");
        uint64_t v;
        unsigned used;
        if (u && aml_int(u, dev_end, &v, &used)) s.uid = (int64_t)v;
        const uint8_t *c = NULL;
        for (const uint8_t *b = dev_start; b + 5 <= dev_end && !c; b++)
            if (!memcmp(b, "_CRS", 4) && b[4] == 0x11) c = b + 4;
        if (!c || !parse_crs(c, dev_end, &s)) {
            printk("INFO virtio: LNRO0005 device without a usable _CRS\n");
            continue;
        }
        bool dup = false;
        for (unsigned i = 0; i < nslots; i++)
            if (slots[i].base == s.base) dup = true;
        if (!dup) slots[nslots++] = s;
        p += 9;
    }
}

/* virtio_mmio=BASE@GSI[,BASE@GSI...] */
static void scan_cmdline(void)
{
    const char *v = cmdline_get("virtio_mmio");
    while (v && *v && *v != ' ' && nslots < VMMIO_MAX_SLOTS) {
        uint64_t base = 0, gsi = 0;
        unsigned basebits = 16;
        if (v[0] == '0' && (v[1] == 'x' || v[1] == 'X')) v += 2;
        else basebits = 10;
        for (; *v && *v != '@' && *v != ',' && *v != ' '; v++) {
            unsigned d = (*v >= '0' && *v <= '9') ? (unsigned)(*v - '0')
                       : (*v >= 'a' && *v <= 'f') ? (unsigned)(*v - 'a' + 10)
                       : (*v >= 'A' && *v <= 'F') ? (unsigned)(*v - 'A' + 10) : 99;
            if (d >= basebits) return;
            base = base * basebits + d;
        }
        if (*v == '@')
            for (v++; *v >= '0' && *v <= '9'; v++) gsi = gsi * 10 + (uint64_t)(*v - '0');
        bool dup = false;
        for (unsigned i = 0; i < nslots; i++)
            if (slots[i].base == base) dup = true;
        if (!dup && base && base < 0x100000000ull) {
            struct vmmio_slot *s = &slots[nslots++];
            memset(s, 0, sizeof *s);
            s->base = base;
            s->size = 0x200;
            s->gsi = (uint32_t)gsi;
            s->has_irq = true;
            s->uid = -1;
            s->source = "cmdline";
        }
        if (*v == ',') v++;
        else break;
    }
}

unsigned vmmio_discover(struct vmmio_slot **out)
{
    if (!discovered) {
        discovered = true;
        const struct acpi_header *fadt = acpi_table("FACP", 0);
        const uint8_t *dsdt = fadt ? dsdt_of(fadt) : NULL;
        if (dsdt) scan_table((const struct acpi_header *)dsdt);
        for (unsigned i = 0; i < 16; i++) {
            const struct acpi_header *ssdt = acpi_table("SSDT", i);
            if (!ssdt) break;
            scan_table(ssdt);
        }
        scan_cmdline();
        for (unsigned i = 0; i < nslots; i++) {
            struct vmmio_slot *s = &slots[i];
            if (s->base >= 0x100000000ull || s->base + 0x100 > 0x100000000ull) continue;
            s->magic = mmio_read32(s->base + VMMIO_MAGIC);
            s->version = mmio_read32(s->base + VMMIO_VERSION);
            s->device_id = mmio_read32(s->base + VMMIO_DEVICE_ID);
            s->vendor_id = mmio_read32(s->base + VMMIO_VENDOR_ID);
        }
    }
    if (out) *out = slots;
    return nslots;
}

struct vmmio_slot *vmmio_find(uint32_t device_id, unsigned nth)
{
    vmmio_discover(NULL);
    for (unsigned i = 0; i < nslots; i++)
        if (slots[i].magic == VIRTIO_MMIO_MAGIC_VALUE && slots[i].device_id == device_id && nth-- == 0)
            return &slots[i];
    return NULL;
}

unsigned vmmio_slot_index(const struct vmmio_slot *s) { return (unsigned)(s - slots); }

/* ---- device: transport accessors ---------------------------------------------------------- */
static inline uint32_t rd(struct vdev *d, unsigned off) { return mmio_read32(d->base + off); }
static inline void wr(struct vdev *d, unsigned off, uint32_t v) { mmio_write32(d->base + off, v); }
static inline bool is_pci(const struct vdev *d) { return d->transport == VT_PCI; }

uint32_t vdev_status(struct vdev *d)
{
    return is_pci(d) ? mmio_read8(d->base + VPCI_STATUS) : rd(d, VMMIO_STATUS);
}

static void set_status(struct vdev *d, uint32_t v)
{
    if (is_pci(d)) mmio_write8(d->base + VPCI_STATUS, (uint8_t)v);
    else wr(d, VMMIO_STATUS, v);
}

static uint32_t device_features(struct vdev *d, unsigned sel)
{
    wr(d, is_pci(d) ? VPCI_DFSELECT : VMMIO_DEVICE_FEATURES_SEL, sel);
    return rd(d, is_pci(d) ? VPCI_DF : VMMIO_DEVICE_FEATURES);
}

static void driver_features(struct vdev *d, unsigned sel, uint32_t v)
{
    wr(d, is_pci(d) ? VPCI_GFSELECT : VMMIO_DRIVER_FEATURES_SEL, sel);
    wr(d, is_pci(d) ? VPCI_GF : VMMIO_DRIVER_FEATURES, v);
}

static uint32_t cfg_generation(struct vdev *d)
{
    if (is_pci(d)) return mmio_read8(d->base + VPCI_CFG_GENERATION);
    return d->version >= 2 ? rd(d, VMMIO_CONFIG_GENERATION) : 0;
}

const char *vdev_name(const struct vdev *d)
{
    static char buf[4][24];
    static unsigned k;
    char *b = buf[k++ % 4];
    if (is_pci(d)) snprintf(b, 24, "pci@%s", vpci_name(d->pci));
    else snprintf(b, 24, "mmio@%lx", d->base);
    return b;
}

#define FAIL(...) ({ snprintf(d->err, sizeof d->err, __VA_ARGS__); set_status(d, vdev_status(d) | VIRTIO_STATUS_FAILED); false; })

bool vdev_reset(struct vdev *d)
{
    set_status(d, 0);
    return WAIT_US(vdev_status(d) == 0, 100000);
}

/* queue memory: descriptors at +0, avail right after them, used at +4096 (legacy QueueAlign) */
static bool alloc_queue(struct vdev *d, struct virtq *q, unsigned qi, unsigned n)
{
    uint8_t *m = dma_alloc(8192, 4096);
    if (!m) return FAIL("out of DMA memory");
    q->index = qi;
    q->size = (uint16_t)n;
    q->mem = (uint64_t)(uintptr_t)m;
    q->desc = (volatile struct virtq_desc *)m;
    q->avail = (volatile uint16_t *)(m + 16 * n);
    q->used_hdr = (volatile uint16_t *)(m + 4096);
    q->used = (volatile struct virtq_used_elem *)(m + 4096 + 4);
    return true;
}

static unsigned pick_size(unsigned max, unsigned want)
{
    unsigned n = want;
    while (n > max) n >>= 1;
    return n;
}

static bool setup_queue_mmio(struct vdev *d, unsigned qi, unsigned qsize)
{
    struct virtq *q = &d->q[qi];
    memset(q, 0, sizeof *q);
    wr(d, VMMIO_QUEUE_SEL, qi);
    if (d->version >= 2 && rd(d, VMMIO_QUEUE_READY)) return FAIL("queue %u ready before set-up", qi);
    if (d->version == 1 && rd(d, VMMIO_QUEUE_PFN)) return FAIL("queue %u PFN set before set-up", qi);
    uint32_t max = rd(d, VMMIO_QUEUE_NUM_MAX);
    if (max == 0) return FAIL("queue %u: QueueNumMax 0 (not available)", qi);
    unsigned n = pick_size(max, qsize);
    if (!n) return FAIL("queue %u: QueueNumMax %u", qi, max);
    if (!alloc_queue(d, q, qi, n)) return false;
    wr(d, VMMIO_QUEUE_NUM, n);
    if (d->version >= 2) {
        uint64_t de = q->mem, dr = q->mem + 16 * n, dv = q->mem + 4096;
        wr(d, VMMIO_QUEUE_DESC_LOW, (uint32_t)de);
        wr(d, VMMIO_QUEUE_DESC_HIGH, (uint32_t)(de >> 32));
        wr(d, VMMIO_QUEUE_DRIVER_LOW, (uint32_t)dr);
        wr(d, VMMIO_QUEUE_DRIVER_HIGH, (uint32_t)(dr >> 32));
        wr(d, VMMIO_QUEUE_DEVICE_LOW, (uint32_t)dv);
        wr(d, VMMIO_QUEUE_DEVICE_HIGH, (uint32_t)(dv >> 32));
        wr(d, VMMIO_QUEUE_READY, 1);
        if (rd(d, VMMIO_QUEUE_READY) != 1) return FAIL("queue %u: QueueReady reads back 0", qi);
    } else {
        /* legacy: avail right after the descriptors, used at the next QueueAlign (4096) */
        wr(d, VMMIO_QUEUE_ALIGN, 4096);
        wr(d, VMMIO_QUEUE_PFN, (uint32_t)(q->mem >> 12));
        if (rd(d, VMMIO_QUEUE_PFN) != (uint32_t)(q->mem >> 12)) return FAIL("queue %u: QueuePFN readback", qi);
    }
    return true;
}

/* PCI (§4.1.5.1.3): queue_select, queue_size (device's maximum, may be reduced), queue_enable
 * must read 0, addresses, queue_msix_vector (+ read-back), queue_notify_off, queue_enable = 1 */
static bool setup_queue_pci(struct vdev *d, unsigned qi, unsigned qsize, uint16_t vec)
{
    struct virtq *q = &d->q[qi];
    memset(q, 0, sizeof *q);
    uint64_t c = d->base;
    mmio_write16(c + VPCI_Q_SELECT, (uint16_t)qi);
    if (mmio_read16(c + VPCI_Q_SELECT) != qi) return FAIL("queue_select reads %u, wrote %u", mmio_read16(c + VPCI_Q_SELECT), qi);
    if (mmio_read16(c + VPCI_Q_ENABLE)) return FAIL("queue %u enabled before set-up", qi);
    unsigned max = mmio_read16(c + VPCI_Q_SIZE);
    if (max == 0) return FAIL("queue %u: queue_size 0 (not available)", qi);
    unsigned n = pick_size(max, qsize);
    if (!n) return FAIL("queue %u: queue_size %u", qi, max);
    if (!alloc_queue(d, q, qi, n)) return false;
    mmio_write16(c + VPCI_Q_SIZE, (uint16_t)n);
    if (mmio_read16(c + VPCI_Q_SIZE) != n) return FAIL("queue %u: queue_size reads %u after writing %u", qi, mmio_read16(c + VPCI_Q_SIZE), n);
    uint64_t de = q->mem, dr = q->mem + 16 * n, dv = q->mem + 4096;
    wr(d, VPCI_Q_DESC, (uint32_t)de);
    wr(d, VPCI_Q_DESC + 4, (uint32_t)(de >> 32));
    wr(d, VPCI_Q_DRIVER, (uint32_t)dr);
    wr(d, VPCI_Q_DRIVER + 4, (uint32_t)(dr >> 32));
    wr(d, VPCI_Q_DEVICE, (uint32_t)dv);
    wr(d, VPCI_Q_DEVICE + 4, (uint32_t)(dv >> 32));
    if (rd(d, VPCI_Q_DESC) != (uint32_t)de || rd(d, VPCI_Q_DEVICE) != (uint32_t)dv)
        return FAIL("queue %u: queue_desc/queue_device read back %x/%x", qi, rd(d, VPCI_Q_DESC), rd(d, VPCI_Q_DEVICE));
    mmio_write16(c + VPCI_Q_MSIX, vec);
    d->qvec[qi] = mmio_read16(c + VPCI_Q_MSIX);
    d->qnotify_off[qi] = mmio_read16(c + VPCI_Q_NOFF);
    uint64_t span = (uint64_t)d->qnotify_off[qi] * d->notify_mult + 2;
    if (d->pci->cap[VPCI_CAP_NOTIFY].len < span)
        return FAIL("queue %u: notify offset %u * %u outside the notify structure (%u bytes)", qi, d->qnotify_off[qi],
                    d->notify_mult, d->pci->cap[VPCI_CAP_NOTIFY].len);
    mmio_write16(c + VPCI_Q_ENABLE, 1);
    if (mmio_read16(c + VPCI_Q_ENABLE) != 1) return FAIL("queue %u: queue_enable reads back 0", qi);
    return true;
}

/* the generic initialization sequence (§3.1.1) over either transport */
static bool init_common(struct vdev *d, uint64_t want, unsigned nqueues, unsigned qsize, const uint16_t *qvec,
                        uint16_t cfgvec)
{
    bool modern = is_pci(d) || d->version >= 2;
    /* 1. reset */
    if (!vdev_reset(d)) return FAIL("Status does not read back 0 after reset (%x)", vdev_status(d));
    /* 2-3. ACKNOWLEDGE, DRIVER */
    set_status(d, VIRTIO_STATUS_ACKNOWLEDGE);
    set_status(d, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
    uint32_t st = vdev_status(d);
    if (st != (VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER)) return FAIL("Status reads %x after ACK|DRIVER", st);
    if (!is_pci(d) && d->version == 1) wr(d, VMMIO_GUEST_PAGE_SIZE, 4096);
    /* 4. features */
    uint64_t f = device_features(d, 0);
    if (modern) {
        f |= (uint64_t)device_features(d, 1) << 32;
        if (!(f & BIT64(VIRTIO_F_VERSION_1))) return FAIL("modern device does not offer VERSION_1 (%lx)", f);
        want |= BIT64(VIRTIO_F_VERSION_1);
    } else {
        want &= 0xffffffffull;
        want &= ~BIT64(VIRTIO_F_VERSION_1);
    }
    d->device_features = f;
    d->features = f & want;
    driver_features(d, 0, (uint32_t)d->features);
    if (modern) {
        driver_features(d, 1, (uint32_t)(d->features >> 32));
        /* 5-6. FEATURES_OK and check it stuck */
        set_status(d, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
        st = vdev_status(d);
        if (!(st & VIRTIO_STATUS_FEATURES_OK)) return FAIL("FEATURES_OK not accepted (features %lx, status %x)", d->features, st);
    }
    /* 7. device-specific set-up: queues (and MSI-X vectors on PCI) */
    if (is_pci(d)) {
        unsigned nq = mmio_read16(d->base + VPCI_NUM_QUEUES);
        if (nq < nqueues) return FAIL("num_queues %u < %u", nq, nqueues);
        mmio_write16(d->base + VPCI_MSIX_CONFIG, cfgvec);
        d->cfgvec = mmio_read16(d->base + VPCI_MSIX_CONFIG);
    }
    for (unsigned i = 0; i < nqueues; i++) {
        bool ok = is_pci(d) ? setup_queue_pci(d, i, qsize, qvec ? qvec[i] : VIRTIO_MSI_NO_VECTOR)
                            : setup_queue_mmio(d, i, qsize);
        if (!ok) return false;
    }
    d->nq = nqueues;
    /* 8. DRIVER_OK */
    uint32_t ok = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_DRIVER_OK |
                  (modern ? VIRTIO_STATUS_FEATURES_OK : 0);
    set_status(d, ok);
    st = vdev_status(d);
    if (st != ok) return FAIL("Status reads %x after DRIVER_OK (wrote %x)", st, ok);
    return true;
}

bool vdev_init(struct vdev *d, struct vmmio_slot *s, uint64_t want, unsigned nqueues, unsigned qsize)
{
    memset(d, 0, sizeof *d);
    d->transport = VT_MMIO;
    d->slot = s;
    d->base = s->base;
    if (nqueues > VDEV_MAX_QUEUES) return snprintf(d->err, sizeof d->err, "too many queues"), false;
    if (rd(d, VMMIO_MAGIC) != VIRTIO_MMIO_MAGIC_VALUE) return snprintf(d->err, sizeof d->err, "bad magic"), false;
    d->version = rd(d, VMMIO_VERSION);
    if (d->version != 1 && d->version != 2) return snprintf(d->err, sizeof d->err, "version %u", d->version), false;
    return init_common(d, want, nqueues, qsize, NULL, 0);
}

bool vpci_init(struct vdev *d, struct vpci_fn *f, uint64_t want, unsigned nqueues, unsigned qsize,
               const uint16_t *qvec, uint16_t cfgvec)
{
    memset(d, 0, sizeof *d);
    d->transport = VT_PCI;
    d->pci = f;
    d->version = 2;
    if (nqueues > VDEV_MAX_QUEUES) return snprintf(d->err, sizeof d->err, "too many queues"), false;
    if (f->err[0]) return snprintf(d->err, sizeof d->err, "%s", f->err), false;
    if (!f->cap[VPCI_CAP_COMMON].addr || !f->cap[VPCI_CAP_NOTIFY].addr || !f->cap[VPCI_CAP_ISR].addr)
        return snprintf(d->err, sizeof d->err, "missing common/notify/ISR structure"), false;
    d->base = f->cap[VPCI_CAP_COMMON].addr;
    d->notify = f->cap[VPCI_CAP_NOTIFY].addr;
    d->isr = f->cap[VPCI_CAP_ISR].addr;
    d->devcfg = f->cap[VPCI_CAP_DEVICE].addr;
    d->notify_mult = f->notify_mult;
    return init_common(d, want, nqueues, qsize, qvec, cfgvec);
}

uint32_t vdev_cfg32(struct vdev *d, unsigned off)
{
    return is_pci(d) ? mmio_read32(d->devcfg + off) : rd(d, VMMIO_CONFIG + off);
}

void vdev_cfg_write32(struct vdev *d, unsigned off, uint32_t v)
{
    if (is_pci(d)) mmio_write32(d->devcfg + off, v);
    else wr(d, VMMIO_CONFIG + off, v);
}

uint64_t vdev_cfg64(struct vdev *d, unsigned off)
{
    bool gen = is_pci(d) || d->version >= 2;
    for (int i = 0; i < 10; i++) {
        uint32_t g = cfg_generation(d);
        uint64_t v = vdev_cfg32(d, off) | (uint64_t)vdev_cfg32(d, off + 4) << 32;
        if (!gen || cfg_generation(d) == g) return v;
    }
    return ~0ull;
}

/* ---- virtqueue -------------------------------------------------------------------------- */
int vq_add(struct virtq *q, const struct vbuf *b, unsigned n)
{
    if (!q->size || n == 0 || n > q->size) return -1;
    uint16_t head = q->next_desc;
    for (unsigned i = 0; i < n; i++) {
        uint16_t di = (uint16_t)((head + i) % q->size);
        q->desc[di].addr = b[i].addr;
        q->desc[di].len = b[i].len;
        q->desc[di].flags = (uint16_t)((b[i].device_writes ? VIRTQ_DESC_F_WRITE : 0) |
                                       (i + 1 < n ? VIRTQ_DESC_F_NEXT : 0));
        q->desc[di].next = (uint16_t)((head + i + 1) % q->size);
    }
    q->next_desc = (uint16_t)((head + n) % q->size);
    q->avail[2 + q->avail_idx % q->size] = head;
    virt_wmb();
    q->avail_idx++;
    q->avail[1] = q->avail_idx;
    return head;
}

/* Chain at fixed descriptors head..head+n-1 (no wrap; the caller owns that range, e.g. one slot
 * per request for deep queues where completions come back out of order). */
int vq_add_at(struct virtq *q, uint16_t head, const struct vbuf *b, unsigned n)
{
    if (!q->size || n == 0 || (unsigned)head + n > q->size) return -1;
    for (unsigned i = 0; i < n; i++) {
        unsigned di = head + i;
        q->desc[di].addr = b[i].addr;
        q->desc[di].len = b[i].len;
        q->desc[di].flags = (uint16_t)((b[i].device_writes ? VIRTQ_DESC_F_WRITE : 0) |
                                       (i + 1 < n ? VIRTQ_DESC_F_NEXT : 0));
        q->desc[di].next = (uint16_t)(di + 1 < q->size ? di + 1 : 0);
    }
    q->avail[2 + q->avail_idx % q->size] = head;
    virt_wmb();
    q->avail_idx++;
    q->avail[1] = q->avail_idx;
    return head;
}

void vq_set_no_interrupt(struct virtq *q, bool on) { q->avail[0] = on ? VIRTQ_AVAIL_F_NO_INTERRUPT : 0; }

void vq_kick(struct vdev *d, unsigned qi)
{
    virt_mb(); /* the avail idx store before the used.flags load (§2.7.13.4) */
    if (qi < VDEV_MAX_QUEUES && (d->q[qi].used_hdr && (d->q[qi].used_hdr[0] & VIRTQ_USED_F_NO_NOTIFY))) {
        d->kicks_suppressed++;
        return;
    }
    d->kicks++;
    if (is_pci(d)) mmio_write16(d->notify + (uint64_t)d->qnotify_off[qi] * d->notify_mult, (uint16_t)qi);
    else wr(d, VMMIO_QUEUE_NOTIFY, qi);
}

bool vq_poll(struct virtq *q, uint32_t *id, uint32_t *len)
{
    uint16_t idx = q->used_hdr[1];
    if (idx == q->last_used) return false;
    virt_wmb(); /* x86: loads are not reordered with older loads; a compiler barrier suffices */
    volatile struct virtq_used_elem *e = &q->used[q->last_used % q->size];
    if (id) *id = e->id;
    if (len) *len = e->len;
    q->last_used++;
    return true;
}

bool vq_wait(struct vdev *d, unsigned qi, uint64_t timeout_us, uint32_t *id, uint32_t *len)
{
    struct virtq *q = &d->q[qi];
    return WAIT_US(vq_poll(q, id, len), timeout_us);
}

/* ---- interrupts ------------------------------------------------------------------------- */
volatile uint32_t vmmio_isr_bits[VMMIO_MAX_SLOTS];
static uint64_t isr_base[VMMIO_MAX_SLOTS];

/* ring 0 (emulated on PVM): acknowledge the device, record what it said, nothing else */
static void vmmio_isr(unsigned vec)
{
    unsigned i = vec - VEC_VIRTIO_BASE;
    if (i >= VMMIO_MAX_SLOTS || !isr_base[i]) return;
    uint32_t st = mmio_read32(isr_base[i] + VMMIO_INTERRUPT_STATUS);
    mmio_write32(isr_base[i] + VMMIO_INTERRUPT_ACK, st);
    vmmio_isr_bits[i] |= st;
}

/* the IOAPIC (MADT) serving a GSI: base and pin */
bool gsi_ioapic(uint32_t gsi, uint64_t *base, unsigned *pin)
{
    const struct acpi_header *h = acpi_table("APIC", 0);
    if (!h) {
        *base = ioapic_base;
        *pin = gsi;
        return gsi < ioapic_pins();
    }
    const uint8_t *p = (const uint8_t *)h;
    for (uint32_t off = 44; off + 2 <= h->length;) {
        uint8_t type = p[off], len = p[off + 1];
        if (len < 2 || off + len > h->length) break;
        if (type == 1 && len >= 12) {
            uint64_t b = *(const uint32_t *)(p + off + 4);
            uint32_t gb = *(const uint32_t *)(p + off + 8);
            mmio_write32(b, 1);
            unsigned pins = ((mmio_read32(b + 0x10) >> 16) & 0xff) + 1;
            if (gsi >= gb && gsi < gb + pins) {
                *base = b;
                *pin = gsi - gb;
                return true;
            }
        }
        off += len;
    }
    return false;
}

void ioapic_rte(uint64_t base, unsigned pin, uint32_t lo, uint32_t hi)
{
    mmio_write32(base, 0x10 + 2 * pin + 1);
    mmio_write32(base + 0x10, hi);
    mmio_write32(base, 0x10 + 2 * pin);
    mmio_write32(base + 0x10, lo);
}

bool vdev_irq_route(struct vdev *d, bool masked)
{
    struct vmmio_slot *s = d->slot;
    unsigned i = vmmio_slot_index(s);
    if (!s->has_irq || i >= VMMIO_MAX_SLOTS) return false;
    uint64_t base;
    unsigned pin;
    if (!gsi_ioapic(s->gsi, &base, &pin)) return false;
    d->vec = VEC_VIRTIO_BASE + i;
    isr_base[i] = d->base;
    irq_set_handler(d->vec, vmmio_isr, EOI_LAPIC);
    uint32_t lo = d->vec | (s->level ? 1u << 15 : 0) | (s->active_low ? 1u << 13 : 0) | (masked ? 1u << 16 : 0);
    ioapic_rte(base, pin, lo, lapic_id() << 24);
    return true;
}

void vdev_irq_mask(struct vdev *d)
{
    uint64_t base;
    unsigned pin;
    if (!d->vec || !gsi_ioapic(d->slot->gsi, &base, &pin)) return;
    ioapic_rte(base, pin, d->vec | (1u << 16), lapic_id() << 24);
}
