/* qvm test guest: virtio over PCI (virtio 1.2 §4.1), the transport-specific part: bus-0
 * enumeration through 0xCF8, BAR sizing (and assignment when the firmware left a memory BAR at 0
 * or above the guest's 4 GiB identity map), the virtio_pci_cap list, MSI-X table/PBA access.
 * Queue handling and the init sequence are shared with virtio-mmio (virtio.c, vpci_init). Ring 3. */
#include "virtio.h"

static struct vpci_fn fns[VPCI_MAX_FNS];
static unsigned nfns;
static bool discovered;

static uint32_t c32(const struct vpci_fn *f, unsigned off) { return pci_cfg_read32(f->bus, f->dev, f->fn, off); }
static uint16_t c16(const struct vpci_fn *f, unsigned off) { return pci_cfg_read16(f->bus, f->dev, f->fn, off); }
static uint8_t c8(const struct vpci_fn *f, unsigned off) { return pci_cfg_read8(f->bus, f->dev, f->fn, off); }
static void w32(const struct vpci_fn *f, unsigned off, uint32_t v) { pci_cfg_write32(f->bus, f->dev, f->fn, off, v); }
static void w16(const struct vpci_fn *f, unsigned off, uint16_t v) { pci_cfg_write16(f->bus, f->dev, f->fn, off, v); }

const char *vpci_name(const struct vpci_fn *f)
{
    static char buf[4][12];
    static unsigned k;
    char *b = buf[k++ % 4];
    snprintf(b, 12, "%02x:%02x.%x", f->bus, f->dev, f->fn);
    return b;
}

/* sizes every BAR with decoding off (restores the values) */
static void size_bars(struct vpci_fn *f)
{
    uint16_t cmd = c16(f, 0x04);
    w16(f, 0x04, (uint16_t)(cmd & ~(PCI_CMD_IO | PCI_CMD_MEM)));
    for (unsigned i = 0; i < 6; i++) {
        unsigned off = 0x10 + 4 * i;
        uint32_t v = c32(f, off);
        w32(f, off, 0xffffffffu);
        uint32_t m = c32(f, off);
        w32(f, off, v);
        if (m == 0 || m == 0xffffffffu) continue; /* not implemented */
        if (v & 1) {
            f->bar_io[i] = true;
            f->bar[i] = v & ~3u;
            f->bar_size[i] = (uint16_t)(~(m & ~3u) + 1);
            continue;
        }
        uint64_t addr = v & ~0xfu, mask = m & ~0xfu;
        if (((v >> 1) & 3) == 2 && i < 5) {
            f->bar_64[i] = true;
            uint32_t vh = c32(f, off + 4);
            w32(f, off + 4, 0xffffffffu);
            uint32_t mh = c32(f, off + 4);
            w32(f, off + 4, vh);
            addr |= (uint64_t)vh << 32;
            mask |= (uint64_t)mh << 32;
        } else {
            mask |= 0xffffffff00000000ull;
        }
        f->bar[i] = addr;
        f->bar_size[i] = ~mask + 1;
        if (f->bar_64[i]) i++; /* the upper half */
    }
    w16(f, 0x04, cmd);
}

/* free-window allocator: vpci_window=BASE-END (default 0xc0000000-0xd0000000); skips any range
 * a bus-0 BAR (all functions, by address) or the ECAM region already occupies */
static uint64_t win_next, win_end;

static bool range_busy(uint64_t a, uint64_t size)
{
    for (unsigned i = 0; i < nfns; i++)
        for (unsigned b = 0; b < 6; b++)
            if (!fns[i].bar_io[b] && fns[i].bar[b] && fns[i].bar[b] < a + size && a < fns[i].bar[b] + fns[i].bar_size[b])
                return true;
    const struct acpi_header *mcfg = acpi_table("MCFG", 0);
    if (mcfg && mcfg->length >= 60) {
        uint64_t e;
        memcpy(&e, (const uint8_t *)mcfg + 44, 8);
        uint8_t bs = ((const uint8_t *)mcfg)[54], be = ((const uint8_t *)mcfg)[55];
        uint64_t es = e + ((uint64_t)bs << 20), ee = e + ((uint64_t)(be + 1) << 20);
        if (es < a + size && a < ee) return true;
    }
    return a < 0x100000000ull && a + size > 0xfec00000ull; /* IOAPIC, LAPIC, firmware */
}

static uint64_t alloc_window(uint64_t size)
{
    if (!win_end) {
        win_next = 0xc0000000ull;
        win_end = 0xd0000000ull;
        const char *w = cmdline_get("vpci_window");
        if (w) {
            uint64_t a = 0, b = 0;
            const char *p = w;
            if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) p += 2;
            for (; *p && *p != '-' && *p != ' '; p++) {
                unsigned dgt = (*p >= '0' && *p <= '9') ? (unsigned)(*p - '0') : (unsigned)((*p | 0x20) - 'a' + 10);
                a = a * 16 + dgt;
            }
            if (*p == '-') {
                p++;
                if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) p += 2;
                for (; *p && *p != ' '; p++) {
                    unsigned dgt = (*p >= '0' && *p <= '9') ? (unsigned)(*p - '0') : (unsigned)((*p | 0x20) - 'a' + 10);
                    b = b * 16 + dgt;
                }
            }
            if (a && b > a && b <= 0x100000000ull) win_next = a, win_end = b;
        }
    }
    if (size < 4096) size = 4096;
    for (int guard = 0; guard < 256; guard++) {
        uint64_t a = (win_next + size - 1) & ~(size - 1);
        if (a + size > win_end) return 0;
        if (!range_busy(a, size)) {
            win_next = a + size;
            return a;
        }
        win_next = a + size;
    }
    return 0;
}

static void fix_bars(struct vpci_fn *f)
{
    bool force = cmdline_get("vpci_reassign") != NULL; /* test the assignment path on any VMM */
    for (unsigned i = 0; i < 6; i++) {
        if (f->bar_io[i] || !f->bar_size[i]) continue;
        bool high = f->bar[i] + f->bar_size[i] > 0x100000000ull;
        if (f->bar[i] && !high && !force) continue;
        if (f->bar_size[i] > (64u << 20)) {
            snprintf(f->err, sizeof f->err, "BAR%u %lx size %lx: too large to move", i, f->bar[i], f->bar_size[i]);
            continue;
        }
        uint64_t old = f->bar[i];
        f->bar[i] = 0; /* not busy for the allocator */
        uint64_t a = alloc_window(f->bar_size[i]);
        if (!a) {
            f->bar[i] = old;
            snprintf(f->err, sizeof f->err, "BAR%u (size %lx): no room in the free window", i, f->bar_size[i]);
            continue;
        }
        uint16_t cmd = c16(f, 0x04);
        w16(f, 0x04, (uint16_t)(cmd & ~PCI_CMD_MEM));
        w32(f, 0x10 + 4 * i, (uint32_t)a | (c32(f, 0x10 + 4 * i) & 0xf));
        if (f->bar_64[i]) w32(f, 0x14 + 4 * i, 0);
        w16(f, 0x04, cmd);
        f->bar[i] = a;
        f->bar_fixed[i] = true;
        printk("INFO virtio-pci %s: BAR%u %lx -> %lx (size %lx)\n", vpci_name(f), i, old, a, f->bar_size[i]);
    }
}

static void walk_caps(struct vpci_fn *f)
{
    if (!(c16(f, 0x06) & 0x10)) return;
    unsigned pos = c8(f, 0x34) & 0xfc;
    for (int guard = 0; pos >= 0x40 && guard < 48; guard++) {
        uint8_t id = c8(f, pos), next = c8(f, pos + 1) & 0xfc;
        if (id == 0x09 && c8(f, pos + 2) >= 16) { /* vendor specific: virtio_pci_cap */
            uint8_t type = c8(f, pos + 3);
            f->ncaps_vendor++;
            if (type >= 1 && type <= 5 && !f->cap[type].present) {
                struct vpci_cap *c = &f->cap[type];
                c->present = true;
                c->pos = (uint8_t)pos;
                c->bar = c8(f, pos + 4);
                c->off = c32(f, pos + 8);
                c->len = c32(f, pos + 12);
                if (type == VPCI_CAP_NOTIFY) f->notify_mult = c32(f, pos + 16);
            }
        } else if (id == 0x11 && !f->msix_pos) {
            f->msix_pos = (uint8_t)pos;
            f->msix_size = (uint16_t)((c16(f, pos + 2) & 0x7ff) + 1);
            uint32_t t = c32(f, pos + 4), p = c32(f, pos + 8);
            f->msix_table_bar = t & 7;
            f->msix_table_off = t & ~7u;
            f->msix_pba_bar = p & 7;
            f->msix_pba_off = p & ~7u;
        }
        pos = next;
    }
}

/* BAR + offset, checked against the BAR size; 0 if unusable */
static uint64_t bar_addr(struct vpci_fn *f, unsigned bar, uint64_t off, uint64_t len, const char *what)
{
    if (bar > 5 || f->bar_io[bar] || !f->bar[bar] || off + len > f->bar_size[bar] ||
        f->bar[bar] + f->bar_size[bar] > 0x100000000ull) {
        if (!f->err[0])
            snprintf(f->err, sizeof f->err, "%s in BAR%u+%lx len %lx: BAR %lx size %lx unusable", what, bar, off, len,
                     bar <= 5 ? f->bar[bar] : 0, bar <= 5 ? f->bar_size[bar] : 0);
        return 0;
    }
    return f->bar[bar] + off;
}

static void probe(unsigned dev, unsigned fn, uint32_t id)
{
    struct vpci_fn *f = &fns[nfns];
    memset(f, 0, sizeof *f);
    f->bus = 0, f->dev = dev, f->fn = fn;
    f->vendor = (uint16_t)id;
    f->device = (uint16_t)(id >> 16);
    size_bars(f);
    nfns++;
}

static struct vpci_fn *vfn[VPCI_MAX_FNS];
static unsigned nv;

unsigned vpci_discover(void)
{
    if (!discovered) {
        discovered = true;
        /* every function on bus 0 (BARs sized so the allocator can avoid them), then keep the
         * virtio ones at the front */
        for (unsigned dev = 0; dev < 32 && nfns < VPCI_MAX_FNS; dev++) {
            for (unsigned fn = 0; fn < 8 && nfns < VPCI_MAX_FNS; fn++) {
                uint32_t id = pci_cfg_read32(0, dev, fn, 0);
                if ((id & 0xffff) == 0xffff) {
                    if (fn == 0) break;
                    continue;
                }
                uint16_t did = (uint16_t)(id >> 16);
                bool virtio = (id & 0xffff) == VIRTIO_PCI_VENDOR && did >= 0x1000 && did <= 0x107f;
                uint8_t hdr = pci_cfg_read8(0, dev, fn, 0x0e);
                if ((hdr & 0x7f) == 0) probe(dev, fn, id); /* type 0 headers only */
                if (!virtio && (hdr & 0x7f) == 0) fns[nfns - 1].type = 0xffffffffu;
                if (fn == 0 && !(hdr & 0x80)) break;
            }
        }
        for (unsigned i = 0; i < nfns; i++) {
            struct vpci_fn *f = &fns[i];
            if (f->type == 0xffffffffu) continue;
            f->rev = c8(f, 0x08);
            f->subsys_vendor = c16(f, 0x2c);
            f->subsys = c16(f, 0x2e);
            f->int_line = c8(f, 0x3c);
            f->int_pin = c8(f, 0x3d);
            f->transitional = f->device < 0x1040;
            f->type = f->transitional ? f->subsys : (uint32_t)(f->device - VIRTIO_PCI_DEVICE_MODERN);
            fix_bars(f);
            walk_caps(f);
            for (unsigned t = 1; t <= 4; t++) {
                struct vpci_cap *c = &f->cap[t];
                if (!c->present) {
                    if (!f->err[0] && t != VPCI_CAP_DEVICE) snprintf(f->err, sizeof f->err, "no virtio_pci_cap of cfg_type %u", t);
                    continue;
                }
                c->addr = bar_addr(f, c->bar, c->off, c->len ? c->len : 1, t == 1 ? "common" : t == 2 ? "notify" : t == 3 ? "ISR" : "device");
            }
            if (f->msix_pos) {
                f->msix_table = bar_addr(f, f->msix_table_bar, f->msix_table_off, 16u * f->msix_size, "MSI-X table");
                f->msix_pba = bar_addr(f, f->msix_pba_bar, f->msix_pba_off, 8u * ((f->msix_size + 63u) / 64), "MSI-X PBA");
            }
            /* memory decoding + bus mastering; INTx off until a test wants it */
            uint16_t cmd = c16(f, 0x04);
            w16(f, 0x04, (uint16_t)(cmd | PCI_CMD_MEM | PCI_CMD_MASTER | PCI_CMD_INTX_DISABLE));
            vfn[nv++] = f;
        }
    }
    return nv;
}

struct vpci_fn *vpci_at(unsigned i)
{
    vpci_discover();
    return i < nv ? vfn[i] : NULL;
}

struct vpci_fn *vpci_find(uint32_t type, unsigned nth)
{
    vpci_discover();
    for (unsigned i = 0; i < nv; i++)
        if (vfn[i]->type == type && nth-- == 0) return vfn[i];
    return NULL;
}

void vpci_intx(struct vpci_fn *f, bool enable)
{
    uint16_t cmd = c16(f, 0x04);
    w16(f, 0x04, enable ? (uint16_t)(cmd & ~PCI_CMD_INTX_DISABLE) : (uint16_t)(cmd | PCI_CMD_INTX_DISABLE));
}

void vpci_msix_enable(struct vpci_fn *f, bool on)
{
    if (!f->msix_pos) return;
    uint16_t ctl = c16(f, f->msix_pos + 2);
    ctl = (uint16_t)(ctl & ~0xc000);
    if (on) ctl |= 0x8000;
    w16(f, f->msix_pos + 2, ctl);
}

void vpci_msix_entry(struct vpci_fn *f, unsigned entry, unsigned vec, bool masked)
{
    if (!f->msix_table || entry >= f->msix_size) return;
    uint64_t e = f->msix_table + 16ull * entry;
    mmio_write32(e + 12, 1); /* mask while changing */
    mmio_write32(e + 0, 0xfee00000u | (lapic_id() << 12));
    mmio_write32(e + 4, 0);
    mmio_write32(e + 8, vec & 0xff); /* fixed, edge */
    mmio_write32(e + 12, masked ? 1 : 0);
}

void vpci_msix_mask(struct vpci_fn *f, unsigned entry, bool masked)
{
    if (!f->msix_table || entry >= f->msix_size) return;
    mmio_write32(f->msix_table + 16ull * entry + 12, masked ? 1 : 0);
}

bool vpci_msix_pending(struct vpci_fn *f, unsigned entry)
{
    if (!f->msix_pba || entry >= f->msix_size) return false;
    return (mmio_read32(f->msix_pba + 4ull * (entry / 32)) >> (entry % 32)) & 1;
}
