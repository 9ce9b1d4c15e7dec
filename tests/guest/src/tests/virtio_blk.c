/* virtio-blk (virtio 1.2 §5.2) over MMIO (virtio_blk) and PCI (virtio_pci_blk). The runner creates the backing files filled with
 * pattern_byte() (the same formula is in runner/qvmtest.py) and passes:
 *   vblk=N             number of blk devices (read-write + read-only)
 *   vblk_sectors=S     capacity of the read-write disk(s), 512-byte sectors
 *   vblk_ro_sectors=S  capacity of the read-only disk(s) (those offering VIRTIO_BLK_F_RO)
 *   vblk_wsector=W     sector the test overwrites with write_byte(seed) (default 3)
 *   vblk_seed=X        seed of the written data
 * virtio_blk: per read-write disk: capacity, read sectors 0-7 in one request and the last
 *   sector (pattern), read past the end (must fail), write sector W, read it back, FLUSH; the
 *   detail carries "wsector=W wfnv=HASH" (FNV-1a 32 of the written sector) that the runner checks
 *   in the host file after exit. Per read-only disk: read (pattern), a write must complete with
 *   VIRTIO_BLK_S_IOERR and leave the data unchanged (the runner checks the file too).
 * bench virtio_blk: ring-3 polling 4 KiB random reads at queue depth 1 on the first read-write
 *   disk, no interrupts: "BENCH virtio_blk_read_4k_qd1 N iops". */
#include "virtio.h"

#define VIRTIO_BLK_F_RO 5
#define VIRTIO_BLK_F_BLK_SIZE 6
#define VIRTIO_BLK_F_FLUSH 9
#define VIRTIO_BLK_T_IN 0
#define VIRTIO_BLK_T_OUT 1
#define VIRTIO_BLK_T_FLUSH 4
#define VIRTIO_BLK_S_OK 0
#define VIRTIO_BLK_S_IOERR 1
#define VIRTIO_BLK_S_UNSUPP 2

struct blk_req_hdr {
    uint32_t type;
    uint32_t reserved;
    uint64_t sector;
};

static uint8_t pattern_byte(uint64_t off)
{
    uint64_t s = off >> 9, i = off & 511;
    return (uint8_t)(s * 131 + i * 7 + (s >> 8) * 17 + 0x5a);
}
static uint8_t write_byte(uint64_t seed, unsigned i) { return (uint8_t)(i * 3 + seed * 29 + 0x11 + (i >> 7)); }

struct blk {
    struct vdev d;
    struct blk_req_hdr *hdr;
    uint8_t *status;
    uint8_t *buf; /* 4 KiB */
};

/* one request, polled; returns the status byte or -1 on timeout */
static int blk_rw(struct blk *b, uint32_t type, uint64_t sector, void *data, uint32_t len, uint64_t timeout_us)
{
    b->hdr->type = type;
    b->hdr->reserved = 0;
    b->hdr->sector = sector;
    *b->status = 0xff;
    struct vbuf v[3];
    unsigned n = 0;
    v[n++] = (struct vbuf){(uintptr_t)b->hdr, sizeof *b->hdr, false};
    if (len) v[n++] = (struct vbuf){(uintptr_t)data, len, type == VIRTIO_BLK_T_IN};
    v[n++] = (struct vbuf){(uintptr_t)b->status, 1, true};
    if (vq_add(&b->d.q[0], v, n) < 0) return -1;
    vq_kick(&b->d, 0);
    uint32_t id, ul;
    if (!vq_wait(&b->d, 0, timeout_us, &id, &ul)) return -1;
    return *(volatile uint8_t *)b->status;
}

#define BLK_WANT (BIT64(VIRTIO_BLK_F_RO) | BIT64(VIRTIO_BLK_F_FLUSH) | BIT64(VIRTIO_BLK_F_BLK_SIZE))

/* s (virtio-mmio) or f (virtio-pci, MSI-X off, no vectors) */
static bool blk_open(struct blk *b, struct vmmio_slot *s, struct vpci_fn *f)
{
    if (f) {
        vpci_msix_enable(f, false);
        vpci_intx(f, false);
        if (!vpci_init(&b->d, f, BLK_WANT, 1, 16, NULL, VIRTIO_MSI_NO_VECTOR)) return false;
    } else if (!vdev_init(&b->d, s, BLK_WANT, 1, 16)) {
        return false;
    }
    vq_set_no_interrupt(&b->d.q[0], true);
    if (!b->hdr) {
        b->hdr = dma_alloc(sizeof *b->hdr, 16);
        b->status = dma_alloc(16, 16);
        b->buf = dma_alloc(4096, 4096);
    }
    return b->hdr && b->status && b->buf;
}

static bool check_pattern(const uint8_t *p, uint64_t sector, uint32_t len, char *msg, size_t msz)
{
    for (uint32_t i = 0; i < len; i++) {
        uint8_t want = pattern_byte(sector * 512 + i);
        if (p[i] != want) {
            snprintf(msg, msz, "sector %lu byte %u is %x, expected %x", sector + i / 512, i % 512, p[i], want);
            return false;
        }
    }
    return true;
}

static struct blk blk_dev;

static const char *blk_rw_disk(char *msg, size_t msz, char *info, size_t isz)
{
    struct blk *b = &blk_dev;
    uint64_t want_cap = 0, wsec = 3, seed = 1;
    cmdline_u64("vblk_sectors", &want_cap);
    cmdline_u64("vblk_wsector", &wsec);
    cmdline_u64("vblk_seed", &seed);
    uint64_t cap = vdev_cfg64(&b->d, 0);
    if (want_cap && cap != want_cap) {
        snprintf(msg, msz, "capacity %lu sectors, expected vblk_sectors=%lu", cap, want_cap);
        return msg;
    }
    if (cap < 16 || wsec >= cap) {
        snprintf(msg, msz, "capacity %lu too small (write sector %lu)", cap, wsec);
        return msg;
    }
    int st = blk_rw(b, VIRTIO_BLK_T_IN, 0, b->buf, 4096, 2000000);
    if (st != VIRTIO_BLK_S_OK) return snprintf(msg, msz, "read sectors 0-7: status %d", st), msg;
    if (!check_pattern(b->buf, 0, 4096, msg, msz)) return msg;
    st = blk_rw(b, VIRTIO_BLK_T_IN, cap - 1, b->buf, 512, 2000000);
    if (st != VIRTIO_BLK_S_OK) return snprintf(msg, msz, "read last sector %lu: status %d", cap - 1, st), msg;
    if (!check_pattern(b->buf, cap - 1, 512, msg, msz)) return msg;
    st = blk_rw(b, VIRTIO_BLK_T_IN, cap, b->buf, 512, 2000000);
    if (st == VIRTIO_BLK_S_OK || st < 0)
        return snprintf(msg, msz, "read past the end (sector %lu): status %d, expected an error", cap, st), msg;
    /* write, read back, flush */
    for (unsigned i = 0; i < 512; i++) b->buf[i] = write_byte(seed, i);
    uint32_t h = fnv1a32(b->buf, 512);
    st = blk_rw(b, VIRTIO_BLK_T_OUT, wsec, b->buf, 512, 2000000);
    if (st != VIRTIO_BLK_S_OK) return snprintf(msg, msz, "write sector %lu: status %d", wsec, st), msg;
    memset(b->buf, 0, 512);
    st = blk_rw(b, VIRTIO_BLK_T_IN, wsec, b->buf, 512, 2000000);
    if (st != VIRTIO_BLK_S_OK) return snprintf(msg, msz, "read back sector %lu: status %d", wsec, st), msg;
    if (fnv1a32(b->buf, 512) != h) return snprintf(msg, msz, "read back of sector %lu differs", wsec), msg;
    const char *flush = "no-flush-feature";
    if (b->d.features & BIT64(VIRTIO_BLK_F_FLUSH)) {
        st = blk_rw(b, VIRTIO_BLK_T_FLUSH, 0, NULL, 0, 5000000);
        if (st != VIRTIO_BLK_S_OK) return snprintf(msg, msz, "FLUSH: status %d", st), msg;
        flush = "flush";
    } else if (cmdline_get("vblk_flush")) {
        return "device does not offer VIRTIO_BLK_F_FLUSH (vblk_flush expected)";
    }
    /* the neighbours of the written sector are untouched */
    st = blk_rw(b, VIRTIO_BLK_T_IN, wsec - 1, b->buf, 512, 2000000);
    if (st != VIRTIO_BLK_S_OK || !check_pattern(b->buf, wsec - 1, 512, msg, msz))
        return st != VIRTIO_BLK_S_OK ? "read of the sector before the written one failed" : msg;
    snprintf(info, isz, "rw %s cap=%lu feat=%lx %s wsector=%lu wfnv=%08x", vdev_name(&b->d), cap, b->d.features, flush, wsec, h);
    return NULL;
}

static const char *blk_ro_disk(char *msg, size_t msz, char *info, size_t isz)
{
    struct blk *b = &blk_dev;
    uint64_t want_cap = 0;
    cmdline_u64("vblk_ro_sectors", &want_cap);
    uint64_t cap = vdev_cfg64(&b->d, 0);
    if (want_cap && cap != want_cap)
        return snprintf(msg, msz, "read-only disk capacity %lu, expected vblk_ro_sectors=%lu", cap, want_cap), msg;
    int st = blk_rw(b, VIRTIO_BLK_T_IN, 0, b->buf, 512, 2000000);
    if (st != VIRTIO_BLK_S_OK) return snprintf(msg, msz, "ro read sector 0: status %d", st), msg;
    if (!check_pattern(b->buf, 0, 512, msg, msz)) return msg;
    for (unsigned i = 0; i < 512; i++) b->buf[i] = (uint8_t)~pattern_byte(i);
    st = blk_rw(b, VIRTIO_BLK_T_OUT, 0, b->buf, 512, 2000000);
    if (st != VIRTIO_BLK_S_IOERR) return snprintf(msg, msz, "write to the read-only disk: status %d, expected IOERR (1)", st), msg;
    st = blk_rw(b, VIRTIO_BLK_T_IN, 0, b->buf, 512, 2000000);
    if (st != VIRTIO_BLK_S_OK || !check_pattern(b->buf, 0, 512, msg, msz))
        return st != VIRTIO_BLK_S_OK ? "ro re-read failed" : msg;
    snprintf(info, isz, "ro %s cap=%lu write->IOERR", vdev_name(&b->d), cap);
    return NULL;
}

/* every blk device of one transport: n = vblk=, read-only ones = vblk_ro= */
static void blk_all(bool pci)
{
    uint64_t want = 1, want_ro = 0;
    cmdline_u64("vblk", &want);
    cmdline_u64("vblk_ro", &want_ro);
    unsigned n = 0, nro = 0;
    while (pci ? (void *)vpci_find(VIRTIO_ID_BLOCK, n) : (void *)vmmio_find(VIRTIO_ID_BLOCK, n)) n++;
    if (n != want) return test_fail("%u blk devices, expected vblk=%lu", n, want);
    char msg[160], info[160], all[240];
    size_t o = 0;
    all[0] = 0;
    for (unsigned i = 0; i < n; i++) {
        struct vmmio_slot *s = pci ? NULL : vmmio_find(VIRTIO_ID_BLOCK, i);
        struct vpci_fn *f = pci ? vpci_find(VIRTIO_ID_BLOCK, i) : NULL;
        struct blk *b = &blk_dev;
        if (!blk_open(b, s, f)) return test_fail("device %s init: %s", vdev_name(&b->d), b->d.err);
        bool ro = (b->d.features & BIT64(VIRTIO_BLK_F_RO)) != 0;
        nro += ro;
        const char *e = ro ? blk_ro_disk(msg, sizeof msg, info, sizeof info) : blk_rw_disk(msg, sizeof msg, info, sizeof info);
        vdev_reset(&b->d);
        if (e) return test_fail("device %s: %s", vdev_name(&b->d), e);
        if (o + 2 < sizeof all) o += (size_t)snprintf(all + o, sizeof all - o, "%s%s", i ? "; " : "", info);
    }
    if (nro != want_ro) return test_fail("%u read-only disks, expected vblk_ro=%lu", nro, want_ro);
    test_pass("n=%u %s", n, all);
}

static void test_virtio_blk(void) { blk_all(false); }
GUEST_TEST(virtio_blk, test_virtio_blk, TEST_NORMAL, "virtio-blk: read/write/flush, read-only rejection");

/* the same over virtio-pci (polling, MSI-X off); the runner checks the host files the same way */
static void test_virtio_pci_blk(void) { blk_all(true); }
GUEST_TEST(virtio_pci_blk, test_virtio_pci_blk, TEST_NORMAL, "virtio-pci blk: read/write/flush, read-only rejection");

static void bench_virtio_blk(void)
{
    struct vmmio_slot *s = NULL;
    struct blk *b = &blk_dev;
    for (unsigned i = 0; (s = vmmio_find(VIRTIO_ID_BLOCK, i)); i++) {
        if (!blk_open(b, s, NULL)) {
            printk("INFO bench virtio_blk: init %lx: %s\n", s->base, b->d.err);
            return;
        }
        if (!(b->d.features & BIT64(VIRTIO_BLK_F_RO))) break;
        vdev_reset(&b->d);
    }
    if (!s) {
        printk("INFO bench virtio_blk: no read-write virtio-blk device\n");
        return;
    }
    uint64_t cap = vdev_cfg64(&b->d, 0);
    if (cap < 16) return;
    uint64_t blocks = cap / 8, x = 0x9e3779b97f4a7c15ull, ops = 0;
    uint64_t t0 = now_us(), limit_us = 1000000, max_ops = 50000;
    while (ops < max_ops && now_us() - t0 < limit_us) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        int st = blk_rw(b, VIRTIO_BLK_T_IN, (x % blocks) * 8, b->buf, 4096, 1000000);
        if (st != VIRTIO_BLK_S_OK) {
            printk("INFO bench virtio_blk: read failed with status %d after %lu ops\n", st, ops);
            vdev_reset(&b->d);
            return;
        }
        ops++;
    }
    uint64_t dt = now_us() - t0;
    vdev_reset(&b->d);
    bench_report("virtio_blk_read_4k_qd1", dt ? ops * 1000000 / dt : 0, "iops");
}
GUEST_BENCH(virtio_blk, bench_virtio_blk, "virtio-blk 4 KiB random reads, QD1, polling");
