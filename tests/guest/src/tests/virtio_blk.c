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
 * virtio_blk_durable (terminal): flushed data survives kill -9 of the VMM (see below).
 * bench virtio_blk: ring-3 polling, no interrupts, on the first read-write disk: 4 KiB random
 *   read/write at QD1 and QD32 (iops), 1 MiB sequential read/write at QD1 and QD4 (MBps). */
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
static bool blk_open_q(struct blk *b, struct vmmio_slot *s, struct vpci_fn *f, unsigned qsize)
{
    if (f) {
        vpci_msix_enable(f, false);
        vpci_intx(f, false);
        if (!vpci_init(&b->d, f, BLK_WANT, 1, qsize, NULL, VIRTIO_MSI_NO_VECTOR)) return false;
    } else if (!vdev_init(&b->d, s, BLK_WANT, 1, qsize)) {
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
static bool blk_open(struct blk *b, struct vmmio_slot *s, struct vpci_fn *f) { return blk_open_q(b, s, f, 16); }

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

/* ---- deep queues: one request per slot at fixed descriptors -------------------------------
 * Slot k owns descriptors 3k..3k+2 (header, data, status), so completions may come back in any
 * order. Used by the durability test and the benchmarks (polling, no interrupts). */
#define BLKQ_MAX 32
struct blkq {
    struct blk *b;
    unsigned depth, inflight;
    uint32_t bufsz;
    size_t cap;                /* bytes allocated at data */
    struct blk_req_hdr *hdr;   /* [BLKQ_MAX] */
    uint8_t *status;           /* [BLKQ_MAX] */
    uint8_t *data;             /* BLKQ_MAX * bufsz */
    bool busy[BLKQ_MAX];
    uint64_t done, errors;
    int last_bad;              /* status of the last failed request */
};
static struct blkq blkq_state;

/* depth <= 32, per-slot buffers of bufsz bytes (reallocated from the DMA pool when larger) */
static bool blkq_setup(struct blkq *q, struct blk *b, unsigned depth, uint32_t bufsz)
{
    if (depth > BLKQ_MAX || 3 * depth > b->d.q[0].size) return false;
    if (!q->hdr) {
        q->hdr = dma_alloc(BLKQ_MAX * sizeof *q->hdr, 64);
        q->status = dma_alloc(BLKQ_MAX * 16, 64);
    }
    if (!q->data || q->cap < (size_t)depth * bufsz) {
        q->cap = (size_t)depth * bufsz;
        q->data = dma_alloc(q->cap, 4096);
    }
    q->bufsz = bufsz;
    if (!q->hdr || !q->status || !q->data) return false;
    q->b = b;
    q->depth = depth;
    q->inflight = 0;
    q->done = q->errors = 0;
    q->last_bad = 0;
    memset(q->busy, 0, sizeof q->busy);
    return true;
}
static uint8_t *blkq_buf(struct blkq *q, unsigned slot) { return q->data + (size_t)slot * q->bufsz; }
static int blkq_free_slot(struct blkq *q)
{
    for (unsigned i = 0; i < q->depth; i++)
        if (!q->busy[i]) return (int)i;
    return -1;
}
/* queue one request in slot (no kick) */
static bool blkq_submit(struct blkq *q, unsigned slot, uint32_t type, uint64_t sector, uint32_t len)
{
    struct blk_req_hdr *h = &q->hdr[slot];
    h->type = type;
    h->reserved = 0;
    h->sector = sector;
    q->status[slot * 16] = 0xff;
    struct vbuf v[3];
    unsigned n = 0;
    v[n++] = (struct vbuf){(uintptr_t)h, sizeof *h, false};
    if (len) v[n++] = (struct vbuf){(uintptr_t)blkq_buf(q, slot), len, type == VIRTIO_BLK_T_IN};
    v[n++] = (struct vbuf){(uintptr_t)&q->status[slot * 16], 1, true};
    if (vq_add_at(&q->b->d.q[0], (uint16_t)(3 * slot), v, n) < 0) return false;
    q->busy[slot] = true;
    q->inflight++;
    return true;
}
/* reap every completed request; returns the number reaped (slots become free) */
static unsigned blkq_reap(struct blkq *q)
{
    uint32_t id, len;
    unsigned n = 0;
    while (vq_poll(&q->b->d.q[0], &id, &len)) {
        unsigned slot = id / 3;
        if (slot >= q->depth || !q->busy[slot] || id % 3) {
            q->errors++;
            q->last_bad = -2;
            continue;
        }
        uint8_t st = *(volatile uint8_t *)&q->status[slot * 16];
        if (st != VIRTIO_BLK_S_OK) q->errors++, q->last_bad = st;
        q->busy[slot] = false;
        q->inflight--;
        q->done++;
        n++;
    }
    return n;
}
static bool blkq_drain(struct blkq *q, uint64_t timeout_us)
{
    uint64_t t0 = now_us();
    while (q->inflight) {
        if (!blkq_reap(q) && now_us() - t0 > timeout_us) return false;
    }
    return true;
}

/* the first read-write disk, MMIO first, then PCI; qsize for deep queues */
static bool blk_open_rw(struct blk *b, unsigned qsize, char *err, size_t esz)
{
    for (int pci = 0; pci < 2; pci++) {
        for (unsigned i = 0;; i++) {
            struct vmmio_slot *s = pci ? NULL : vmmio_find(VIRTIO_ID_BLOCK, i);
            struct vpci_fn *f = pci ? vpci_find(VIRTIO_ID_BLOCK, i) : NULL;
            if (!s && !f) break;
            if (!blk_open_q(b, s, f, qsize)) {
                snprintf(err, esz, "init %s: %s", vdev_name(&b->d), b->d.err);
                return false;
            }
            if (!(b->d.features & BIT64(VIRTIO_BLK_F_RO))) return true;
            vdev_reset(&b->d);
        }
    }
    snprintf(err, esz, "no read-write virtio-blk device (MMIO or PCI)");
    return false;
}

/* ---- virtio_blk_durable: flushed data survives kill -9 of the VMM ---------------------------
 *   vblk_dsector=S vblk_dcount=N vblk_dseed=X (runner-chosen; defaults 1024, 512, 1)
 * Writes sectors S..S+N-1 with durable_byte(X, sector, i) in requests of 1..64 sectors at queue
 * depth up to 8, waits for all, FLUSHes, prints "TEST virtio_blk_durable PENDING ... dfnv=H"
 * and then keeps writing un-flushed data to S+N..S+2N-1 (never flushed) until the runner kills
 * the VMM with SIGKILL; the runner then requires every byte of S..S+N-1 in the host file and
 * no change outside S..S+2N-1. Not killed within 20 s -> FAIL. Terminal (runs last, alone). */
static uint8_t durable_byte(uint64_t seed, uint64_t sector, unsigned i)
{
    return (uint8_t)(sector * 167 + i * 13 + seed * 101 + (seed >> 8) + (i >> 6) + 0x3c);
}

static void test_virtio_blk_durable(void)
{
    struct blk *b = &blk_dev;
    struct blkq *q = &blkq_state;
    char err[160];
    uint64_t start = 1024, count = 512, seed = 1;
    cmdline_u64("vblk_dsector", &start);
    cmdline_u64("vblk_dcount", &count);
    cmdline_u64("vblk_dseed", &seed);
    if (!blk_open_rw(b, 128, err, sizeof err)) return test_fail("%s", err);
    uint64_t cap = vdev_cfg64(&b->d, 0);
    if (count == 0 || start + 2 * count > cap)
        return test_fail("region %lu+2*%lu does not fit the disk (%lu sectors)", start, count, cap);
    if (!(b->d.features & BIT64(VIRTIO_BLK_F_FLUSH))) return test_fail("device does not offer VIRTIO_BLK_F_FLUSH");
    if (!blkq_setup(q, b, 8, 64 * 512)) return test_fail("queue set-up (queue size %u)", b->d.q[0].size);
    static const unsigned sizes[] = {1, 8, 3, 64, 16, 7, 32, 2};
    uint32_t h = 2166136261u;
    uint64_t sec = start, end = start + count, t0 = now_us();
    unsigned k = 0;
    while (sec < end) {
        int slot = blkq_free_slot(q);
        if (slot < 0) {
            if (!blkq_reap(q) && now_us() - t0 > 10000000) return test_fail("writes stuck (%u in flight)", q->inflight);
            continue;
        }
        uint64_t n = sizes[k++ % 8];
        if (sec + n > end) n = end - sec;
        uint8_t *p = blkq_buf(q, (unsigned)slot);
        for (uint64_t s = 0; s < n; s++)
            for (unsigned i = 0; i < 512; i++) {
                p[s * 512 + i] = durable_byte(seed, sec + s, i);
                h = (h ^ p[s * 512 + i]) * 16777619u;
            }
        if (!blkq_submit(q, (unsigned)slot, VIRTIO_BLK_T_OUT, sec, (uint32_t)(n * 512))) return test_fail("submit failed");
        vq_kick(&b->d, 0);
        sec += n;
    }
    if (!blkq_drain(q, 10000000)) return test_fail("writes did not complete (%u in flight)", q->inflight);
    if (q->errors) return test_fail("%lu writes failed (status %d)", q->errors, q->last_bad);
    uint64_t writes = q->done;
    if (!blkq_submit(q, 0, VIRTIO_BLK_T_FLUSH, 0, 0)) return test_fail("flush submit failed");
    vq_kick(&b->d, 0);
    if (!blkq_drain(q, 5000000)) return test_fail("FLUSH did not complete");
    if (q->errors) return test_fail("FLUSH: status %d", q->last_bad);
    test_pending("rw %s dsector=%lu dcount=%lu dfnv=%08x writes=%lu flushed; writing un-flushed data until killed",
                 vdev_name(&b->d), start, count, h, writes);
    /* un-flushed traffic right after the flush, at queue depth 8, until the runner kills us */
    uint64_t gen = 0, t1 = now_us();
    sec = end;
    while (now_us() - t1 < 20000000) {
        blkq_reap(q);
        int slot = blkq_free_slot(q);
        if (slot < 0) continue;
        uint64_t n = sizes[k++ % 8];
        if (sec + n > end + count) sec = end, gen++;
        uint8_t *p = blkq_buf(q, (unsigned)slot);
        for (uint64_t i = 0; i < n * 512; i++) p[i] = (uint8_t)(i * 5 + gen + sec);
        if (!blkq_submit(q, (unsigned)slot, VIRTIO_BLK_T_OUT, sec, (uint32_t)(n * 512))) break;
        vq_kick(&b->d, 0);
        sec += n;
    }
    test_fail("not killed after 20 s of un-flushed writes (%lu completed, %lu errors)", q->done - writes - 1, q->errors);
}
GUEST_TEST(virtio_blk_durable, test_virtio_blk_durable, TEST_TERMINAL,
           "virtio-blk: flushed data is in the host file after kill -9 of the VMM");

/* ---- bench virtio_blk: ring-3 polling, no interrupts, on the first read-write disk ----------
 *   BENCH virtio_blk_{read,write}_4k_qd{1,32} N iops  (random 4 KiB-aligned offsets)
 *   BENCH virtio_blk_{read,write}_1m_qd{1,4} N MBps    (sequential, wrapping at the end)
 * Each runs for vblk_bench_ms (default 500) after 20 warm-up requests. Write benches overwrite
 * the disk (the bench device set's disk is scratch). */
static void blk_bench_one(struct blk *b, const char *name, uint32_t type, uint32_t size, unsigned depth,
                          bool seq, uint64_t ms)
{
    struct blkq *q = &blkq_state;
    if (!blkq_setup(q, b, depth, size)) {
        printk("INFO bench %s: cannot set up depth %u (queue size %u)\n", name, depth, b->d.q[0].size);
        return;
    }
    uint64_t cap = vdev_cfg64(&b->d, 0), spr = size / 512, blocks = cap / spr, pos = 0;
    uint64_t x = 0x9e3779b97f4a7c15ull;
    if (blocks < 2) return;
    if (type == VIRTIO_BLK_T_OUT)
        for (unsigned s = 0; s < depth; s++) memset(blkq_buf(q, s), (int)(0xa5 + s), size);
    uint64_t t0 = 0, done0 = 0, limit = ms * 1000, tstart = now_us();
    for (;;) {
        unsigned queued = 0;
        int slot;
        while ((slot = blkq_free_slot(q)) >= 0) {
            uint64_t blk;
            if (seq) blk = pos++ % blocks;
            else x ^= x << 13, x ^= x >> 7, x ^= x << 17, blk = x % blocks;
            blkq_submit(q, (unsigned)slot, type, blk * spr, size);
            queued++;
        }
        if (queued) vq_kick(&b->d, 0);
        uint64_t tw = now_us();
        while (!blkq_reap(q)) {
            if (now_us() - tw > 2000000) {
                printk("INFO bench %s: request timed out after %lu ops\n", name, q->done);
                return;
            }
        }
        if (q->errors) {
            printk("INFO bench %s: request failed with status %d after %lu ops\n", name, q->last_bad, q->done);
            return;
        }
        if (!t0 && q->done >= 20) t0 = now_us(), done0 = q->done;
        if (t0 && now_us() - t0 >= limit) break;
        if (now_us() - tstart > 4 * limit + 2000000) break;
    }
    uint64_t dt = now_us() - t0, ops = q->done - done0;
    blkq_drain(q, 2000000);
    if (!dt) return;
    if (size >= (1u << 20)) bench_report(name, ops * size / dt, "MBps"); /* bytes/us = MB/s */
    else bench_report(name, ops * 1000000 / dt, "iops");
}

static void bench_virtio_blk(void)
{
    struct blk *b = &blk_dev;
    char err[160];
    uint64_t ms = 500;
    cmdline_u64("vblk_bench_ms", &ms);
    if (!blk_open_rw(b, 128, err, sizeof err)) {
        printk("INFO bench virtio_blk: %s\n", err);
        return;
    }
    printk("INFO bench virtio_blk: %s queue size %u, %lu sectors, %lu ms per bench\n", vdev_name(&b->d),
           b->d.q[0].size, vdev_cfg64(&b->d, 0), ms);
    blk_bench_one(b, "virtio_blk_read_4k_qd1", VIRTIO_BLK_T_IN, 4096, 1, false, ms);
    blk_bench_one(b, "virtio_blk_read_4k_qd32", VIRTIO_BLK_T_IN, 4096, 32, false, ms);
    blk_bench_one(b, "virtio_blk_write_4k_qd1", VIRTIO_BLK_T_OUT, 4096, 1, false, ms);
    blk_bench_one(b, "virtio_blk_write_4k_qd32", VIRTIO_BLK_T_OUT, 4096, 32, false, ms);
    blk_bench_one(b, "virtio_blk_read_1m_qd1", VIRTIO_BLK_T_IN, 1u << 20, 1, true, ms);
    blk_bench_one(b, "virtio_blk_write_1m_qd1", VIRTIO_BLK_T_OUT, 1u << 20, 1, true, ms);
    /* 4 MiB of buffers: the DMA pool (8 MiB) has no room for 1 MiB at QD32 */
    blk_bench_one(b, "virtio_blk_read_1m_qd4", VIRTIO_BLK_T_IN, 1u << 20, 4, true, ms);
    blk_bench_one(b, "virtio_blk_write_1m_qd4", VIRTIO_BLK_T_OUT, 1u << 20, 4, true, ms);
    vdev_reset(&b->d);
}
GUEST_BENCH(virtio_blk, bench_virtio_blk, "virtio-blk 4 KiB random QD1/QD32, 1 MiB sequential, polling");
