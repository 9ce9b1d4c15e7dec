/* qvm's shared-memory vdev (spec §11; docs/shmem.md): the factory page (registers, status codes),
 * the control page (status, idx, notify, detach), the region's data pages seen through two
 * attachments, the notification interrupt, and attach/detach cycles. QEMU has no such device: the
 * group runs on qvm only, and the runner checks what the guest wrote through the host-side client
 * (qvm-shm), a second implementation of the region protocol.
 *   shmem_local   one VM, both factories (PCI 1C05:0001 and shm_mmio=ADDR with shm_mmio_gsi=N):
 *                 signature/vector, every status code, two clients of one region sharing data,
 *                 notify in both directions (interrupts with the sender's bit), attach/detach
 *                 interrupts, 16 clients (then GSS_NOMEM: the VM's 16 windows are in use),
 *                 shm_cycles (default 10000) attach/detach cycles
 *   shmem_client  driven by serial commands (tests/guest/runner/shm.py): attach NAME PAGES,
 *                 write OFF TEXT, read OFF, notify HEXMASK, wait N MS, status, detach, end
 * Region names start with shm_tag (default "kit") so parallel runs never share a region. */
#include "guest.h"
#include "virtio.h"

#define SHM_SIGNATURE 0x4d534732474d5651ull
enum { F_SIG = 0x00, F_SHMEM = 0x08, F_VECTOR = 0x10, F_STATUS = 0x14, F_SIZE = 0x18, F_NAME = 0x1c, F_FIND = 0x3c };
enum { C_STATUS = 0x0, C_IDX = 0x4, C_NOTIFY = 0x8, C_DETACH = 0xc };
enum { GSS_OK, GSS_UNKNOWN_FAILURE, GSS_NOMEM, GSS_CLIENT_MAX, GSS_ILLEGAL_NAME, GSS_NO_PERMISSION, GSS_DOES_NOT_EXIST };

struct factory {
    uint64_t base;
    unsigned gsi, vec;
    bool ok;
};
static struct factory fact[2]; /* 0: PCI, 1: memory-mapped */
static unsigned fact_dev;      /* the PCI factory's device number on bus 0 */

/* control pages the ISR reads (per factory, per window) and what it saw */
static volatile uint64_t isr_ctl[2][16];
static volatile uint32_t isr_pending[2][16], isr_attached[2][16], isr_count[2], msi_count;

static uint64_t rd64(uint64_t a) { return mmio_read32(a) | ((uint64_t)mmio_read32(a + 4) << 32); }

/* PCI function dev on bus 0: its MSI-X entry 0 -> `vec` on this CPU, Enable set, the entry
 * masked or not; false without an MSI-X capability */
static uint64_t msix_entry0(unsigned dev)
{
    unsigned cap = pci_cfg_read8(0, dev, 0, 0x34);
    for (unsigned n = 0; cap && n < 16 && pci_cfg_read8(0, dev, 0, cap) != 0x11; n++) cap = pci_cfg_read8(0, dev, 0, cap + 1);
    if (!cap || pci_cfg_read8(0, dev, 0, cap) != 0x11) return 0;
    uint32_t tab = pci_cfg_read32(0, dev, 0, cap + 4);
    uint32_t bar = pci_cfg_read32(0, dev, 0, 0x10 + 4 * (tab & 7));
    uint64_t base = bar & ~0xfull;
    if ((bar & 6) == 4) base |= (uint64_t)pci_cfg_read32(0, dev, 0, 0x14 + 4 * (tab & 7)) << 32;
    return base + (tab & ~7u);
}

static bool msix_setup(unsigned dev, unsigned vec, bool masked)
{
    uint64_t e = msix_entry0(dev);
    if (!e) return false;
    mmio_write32(e + 12, 1);
    mmio_write32(e + 0, 0xfee00000u | (lapic_id() << 12));
    mmio_write32(e + 4, 0);
    mmio_write32(e + 8, vec);
    mmio_write32(e + 12, masked ? 1 : 0);
    unsigned cap = pci_cfg_read8(0, dev, 0, 0x34);
    while (pci_cfg_read8(0, dev, 0, cap) != 0x11) cap = pci_cfg_read8(0, dev, 0, cap + 1);
    pci_cfg_write16(0, dev, 0, cap + 2, (uint16_t)((pci_cfg_read16(0, dev, 0, cap + 2) & ~0x4000) | 0x8000));
    return true;
}

static void msix_disable(unsigned dev)
{
    unsigned cap = pci_cfg_read8(0, dev, 0, 0x34);
    for (unsigned n = 0; cap && n < 16 && pci_cfg_read8(0, dev, 0, cap) != 0x11; n++) cap = pci_cfg_read8(0, dev, 0, cap + 1);
    if (cap) pci_cfg_write16(0, dev, 0, cap + 2, (uint16_t)(pci_cfg_read16(0, dev, 0, cap + 2) & ~0xc000));
}

static void shm_isr(unsigned vec)
{
    if (vec == VEC_SHM_MSI) vec = VEC_SHM_PCI; /* the PCI factory's attachments, by message */
    unsigned f = vec == VEC_SHM_MMIO;
    for (unsigned i = 0; i < 16; i++) {
        if (!isr_ctl[f][i]) continue;
        uint32_t st = mmio_read32(isr_ctl[f][i] + C_STATUS);
        isr_pending[f][i] |= st & 0xffff;
        isr_attached[f][i] = st >> 16;
    }
    isr_count[f]++;
}

static void shm_msi_isr(unsigned vec)
{
    shm_isr(vec);
    msi_count++;
}

static char tag[16] = "kit";

static void load_tag(void)
{
    const char *t = cmdline_get("shm_tag");
    if (!t) return;
    unsigned i = 0;
    for (; i + 1 < sizeof tag && t[i] && t[i] != ' '; i++) tag[i] = t[i];
    tag[i] = 0;
}

static void set_name(uint64_t b, const char *suffix)
{
    char n[32] = {0};
    snprintf(n, sizeof n, "%s%s", tag, suffix);
    for (unsigned i = 0; i < 32; i += 4) mmio_write32(b + F_NAME + i, *(uint32_t *)(n + i));
}

/* size write (create-or-attach) or find; returns the status, *ctl and *pages on success */
static uint32_t request(uint64_t b, bool find, uint32_t pages, uint64_t *ctl, uint32_t *size)
{
    __asm__ volatile("" ::: "memory");
    if (find) mmio_write32(b + F_FIND, 1);
    else mmio_write32(b + F_SIZE, pages);
    __asm__ volatile("" ::: "memory");
    uint32_t st = mmio_read32(b + F_STATUS);
    if (ctl) *ctl = rd64(b + F_SHMEM);
    if (size) *size = mmio_read32(b + F_SIZE);
    return st;
}

static bool find_factories(char *err, unsigned cap)
{
    memset(fact, 0, sizeof fact);
    for (unsigned dev = 0; dev < 32; dev++) {
        uint32_t id = pci_cfg_read32(0, dev, 0, 0);
        if (id != 0x00011c05) continue;
        uint32_t bar = pci_cfg_read32(0, dev, 0, 0x10);
        pci_cfg_write16(0, dev, 0, 4, (uint16_t)(pci_cfg_read16(0, dev, 0, 4) | 2));
        fact[0].base = bar & ~0xfull;
        fact_dev = dev;
        fact[0].gsi = pci_cfg_read8(0, dev, 0, 0x3c);
        fact[0].vec = VEC_SHM_PCI;
        fact[0].ok = true;
        break;
    }
    uint64_t a, g;
    if (cmdline_u64("shm_mmio", &a) && cmdline_u64("shm_mmio_gsi", &g)) {
        fact[1].base = a;
        fact[1].gsi = (unsigned)g;
        fact[1].vec = VEC_SHM_MMIO;
        fact[1].ok = true;
    }
    for (unsigned f = 0; f < 2; f++) {
        if (!fact[f].ok) continue;
        uint64_t sig = rd64(fact[f].base + F_SIG);
        if (sig != SHM_SIGNATURE) {
            snprintf(err, cap, "factory %u at 0x%lx: signature %lx", f, fact[f].base, sig);
            return false;
        }
        uint32_t v = mmio_read32(fact[f].base + F_VECTOR);
        if (v != fact[f].gsi) {
            snprintf(err, cap, "factory %u: vector %u, interrupt line/gsi %u", f, v, fact[f].gsi);
            return false;
        }
        uint64_t base;
        unsigned pin;
        if (!gsi_ioapic(fact[f].gsi, &base, &pin)) {
            snprintf(err, cap, "GSI %u on no IOAPIC", fact[f].gsi);
            return false;
        }
        irq_set_handler(fact[f].vec, shm_isr, EOI_LAPIC);
        /* level-triggered (PCI INTx active low as the _PRT says; the MMIO line active high) */
        ioapic_rte(base, pin, fact[f].vec | (1u << 15) | (f == 0 ? 1u << 13 : 0), lapic_id() << 24);
    }
    return true;
}

static bool wait_irq(unsigned f, uint32_t before, uint64_t us) { return WAIT_US(isr_count[f] != before, us); }

#define CHECK(cond, ...)                                              \
    do {                                                              \
        if (!(cond)) {                                                \
            snprintf(err, sizeof err, __VA_ARGS__);                   \
            goto out;                                                 \
        }                                                             \
    } while (0)

static void test_shmem_local(void)
{
    char err[200] = "";
    load_tag();
    if (!find_factories(err, sizeof err)) return test_fail("%s", err);
    if (!fact[0].ok || !fact[1].ok) return test_fail("needs the PCI factory and shm_mmio/shm_mmio_gsi (pci=%d)", fact[0].ok);
    uint64_t P = fact[0].base, M = fact[1].base, c0 = 0, c1 = 0, cx;
    uint32_t st, pages = 0;
    uint64_t cycles = 10000;
    cmdline_u64("shm_cycles", &cycles);
    memset((void *)isr_ctl, 0, sizeof isr_ctl);

    /* status codes, in the spec's order */
    for (unsigned i = 0; i < 32; i += 4) mmio_write32(P + F_NAME + i, 0x41414141); /* no NUL */
    st = request(P, false, 4, &cx, NULL);
    CHECK(st == GSS_ILLEGAL_NAME && cx == ~0ull, "32 bytes without NUL: status %u shmem %lx", st, cx);
    for (unsigned i = 0; i < 32; i += 4) mmio_write32(P + F_NAME + i, 0);
    st = request(P, false, 4, NULL, NULL);
    CHECK(st == GSS_ILLEGAL_NAME, "empty name: status %u", st);
    set_name(P, "-no");
    st = request(P, false, 4, NULL, NULL);
    CHECK(st == GSS_NO_PERMISSION, "denied name: status %u", st);
    set_name(P, "-none");
    st = request(P, true, 0, NULL, NULL);
    CHECK(st == GSS_DOES_NOT_EXIST, "find of a missing region: status %u", st);
    st = request(P, false, 0, NULL, NULL);
    CHECK(st == GSS_NOMEM, "create with 0 pages: status %u", st);
    st = request(P, false, 65537, NULL, NULL); /* over the 256 MiB a guest may create */
    CHECK(st == GSS_NOMEM, "create of 65537 pages: status %u", st);
    st = request(P, false, 0xffffffffu, NULL, NULL);
    CHECK(st == GSS_NOMEM, "create of 0xffffffff pages: status %u", st);
    mmio_write32(P + F_SIG, 0); /* read-only: ignored */
    CHECK(rd64(P + F_SIG) == SHM_SIGNATURE, "the signature changed after a write");

    /* client A (PCI) creates; client B (memory-mapped factory) attaches with another size */
    set_name(P, "-r");
    st = request(P, false, 4, &c0, &pages);
    CHECK(st == GSS_OK && pages == 4, "create: status %u pages %u", st, pages);
    CHECK(mmio_read32(c0 + C_IDX) == 0, "first client's idx %u", mmio_read32(c0 + C_IDX));
    isr_ctl[0][0] = c0;
    uint32_t n0 = isr_count[0];
    set_name(M, "-r");
    st = request(M, true, 0, &c1, &pages);
    CHECK(st == GSS_OK && pages == 4, "find of the region: status %u pages %u", st, pages);
    CHECK(c1 != c0, "both attachments at 0x%lx", c0);
    uint32_t idx1 = mmio_read32(c1 + C_IDX);
    CHECK(idx1 == 1, "second client's idx %u", idx1);
    isr_ctl[1][0] = c1;
    CHECK(wait_irq(0, n0, 2000000), "no interrupt at client 0 when client 1 attached");
    CHECK(isr_attached[0][0] == 3, "client 0 saw attached 0x%x after the attach", isr_attached[0][0]);

    /* the same memory through both windows */
    volatile uint32_t *d0 = (volatile uint32_t *)(uintptr_t)(c0 + 4096), *d1 = (volatile uint32_t *)(uintptr_t)(c1 + 4096);
    for (unsigned i = 0; i < 4 * 1024; i += 97) d0[i] = 0x5a000000u | i;
    for (unsigned i = 0; i < 4 * 1024; i += 97) CHECK(d1[i] == (0x5a000000u | i), "word %u: %x through the second window", i, d1[i]);
    d1[4 * 1024 - 1] = 0xfeedf00d;
    CHECK(d0[4 * 1024 - 1] == 0xfeedf00d, "last word written through the second window reads %x", d0[4 * 1024 - 1]);

    /* notify: 1 -> 0 by bit, 0 -> everyone else by ~0 */
    n0 = isr_count[0];
    isr_pending[0][0] = 0;
    mmio_write32(c1 + C_NOTIFY, 1u << 0);
    CHECK(wait_irq(0, n0, 2000000), "no interrupt at client 0 after notify 0x1");
    CHECK(isr_pending[0][0] == 1u << 1, "client 0 saw pending 0x%x, expected 0x2", isr_pending[0][0]);
    uint32_t n1 = isr_count[1];
    isr_pending[1][0] = 0;
    mmio_write32(c0 + C_NOTIFY, ~0u);
    CHECK(wait_irq(1, n1, 2000000), "no interrupt at client 1 after notify ~0");
    CHECK(isr_pending[1][0] == 1u << 0, "client 1 saw pending 0x%x, expected 0x1", isr_pending[1][0]);
    udelay(20000);
    uint32_t settle = isr_count[0] + isr_count[1];
    udelay(20000);
    CHECK(settle == isr_count[0] + isr_count[1], "interrupts keep coming after the status reads");
    mmio_write32(c0 + C_STATUS, 0xffffffff); /* read-only */
    CHECK(mmio_read32(c0 + C_IDX) == 0, "idx changed");

    /* MSI-X on the PCI function (qvm's addition): while enabled INTx is off; a masked vector
     * holds the notification, unmasking delivers it as a message; disabled, INTx is back */
    irq_set_handler(VEC_SHM_MSI, shm_msi_isr, EOI_LAPIC);
    CHECK(msix_setup(fact_dev, VEC_SHM_MSI, true), "the PCI factory has no MSI-X capability");
    n0 = isr_count[0];
    uint32_t m0 = msi_count;
    mmio_write32(c1 + C_NOTIFY, 1u << 0);
    udelay(50000);
    CHECK(isr_count[0] == n0, "%u interrupts with MSI-X enabled and its vector masked", isr_count[0] - n0);
    isr_pending[0][0] = 0;
    mmio_write32(msix_entry0(fact_dev) + 12, 0); /* unmask */
    CHECK(WAIT_US(msi_count != m0, 2000000), "no MSI after unmasking the vector with a notification pending");
    CHECK(isr_pending[0][0] == 1u << 1, "the MSI's handler saw pending 0x%x", isr_pending[0][0]);
    m0 = msi_count;
    mmio_write32(c1 + C_NOTIFY, 1u << 0);
    CHECK(WAIT_US(msi_count != m0, 2000000), "no MSI for a notification");
    msix_disable(fact_dev);
    udelay(20000);
    n0 = isr_count[0];
    m0 = msi_count;
    mmio_write32(c1 + C_NOTIFY, 1u << 0);
    CHECK(wait_irq(0, n0, 2000000) && msi_count == m0, "MSI-X disabled: INTx not back (irqs %u, MSIs %u)",
          isr_count[0] - n0, msi_count - m0);

    /* detach of client 1: client 0 sees it; client 1's window is gone */
    n0 = isr_count[0];
    isr_ctl[1][0] = 0;
    mmio_write32(c1 + C_DETACH, 0);
    CHECK(wait_irq(0, n0, 2000000), "no interrupt at client 0 when client 1 detached");
    CHECK(isr_attached[0][0] == 1, "client 0 saw attached 0x%x after the detach", isr_attached[0][0]);
    CHECK(mmio_read32(c1 + C_IDX) == 0xffffffff, "a detached control page reads %x", mmio_read32(c1 + C_IDX));

    /* 16 clients (1 + 15 through the PCI factory) use all of the VM's 16 windows: a 17th
     * attachment gets GSS_NOMEM here (GSS_CLIENT_MAX needs clients in other processes:
     * runner/shm.py) */
    uint64_t extra[16];
    set_name(P, "-r");
    for (unsigned i = 1; i < 16; i++) {
        st = request(P, false, 4, &extra[i], NULL);
        CHECK(st == GSS_OK, "attach %u: status %u", i, st);
        CHECK(mmio_read32(extra[i] + C_IDX) == i, "attach %u: idx %u", i, mmio_read32(extra[i] + C_IDX));
        isr_ctl[0][i] = extra[i]; /* the line is shared: the ISR reads every window's status */
    }
    st = request(M, false, 4, NULL, NULL);
    CHECK(st == GSS_NOMEM, "17th attachment in one VM: status %u", st);
    for (unsigned i = 1; i < 16; i++) {
        isr_ctl[0][i] = 0;
        mmio_write32(extra[i] + C_DETACH, 1);
    }
    udelay(20000);
    n0 = isr_count[0];
    udelay(50000);
    CHECK(isr_count[0] == n0, "%u interrupts in 50 ms after every status was read", isr_count[0] - n0);

    /* cycles: each attach takes a KVM memslot and host fds; leaking either would fail early */
    set_name(M, "-cyc");
    uint32_t irq_before_cycles = isr_count[0];
    uint64_t t0 = now_us();
    for (uint64_t i = 0; i < cycles; i++) {
        st = request(M, false, 1, &cx, NULL);
        CHECK(st == GSS_OK, "cycle %lu: status %u", i, st);
        *(volatile uint32_t *)(uintptr_t)(cx + 4096) = (uint32_t)i;
        mmio_write32(cx + C_DETACH, 0);
    }
    uint64_t dt = now_us() - t0;
    mmio_write32(c0 + C_DETACH, 0);
    isr_ctl[0][0] = 0;
    test_pass("PCI factory 0x%lx gsi %u, MMIO factory 0x%lx gsi %u; windows 0x%lx 0x%lx; irqs %u/%u (%u during the "
              "cycles); %lu attach/detach cycles in %lu ms",
              P, fact[0].gsi, M, fact[1].gsi, c0, c1, isr_count[0], isr_count[1], isr_count[0] - irq_before_cycles,
              cycles, dt / 1000);
    return;
out:
    memset((void *)isr_ctl, 0, sizeof isr_ctl);
    test_fail("%s", err);
}
GUEST_TEST(shmem_local, test_shmem_local, TEST_NORMAL, "qvm shmem: factory, control page, notify, 16 clients, cycles");


static uint64_t parse_num(const char **p, unsigned base)
{
    uint64_t x = 0;
    while (**p == ' ') (*p)++;
    for (;; (*p)++) {
        char c = **p;
        unsigned d;
        if (c >= '0' && c <= '9') d = (unsigned)(c - '0');
        else if (base == 16 && c >= 'a' && c <= 'f') d = (unsigned)(c - 'a' + 10);
        else break;
        x = x * base + d;
    }
    return x;
}

static void test_shmem_client(void)
{
    char err[200] = "", line[160];
    unsigned ll = 0, f = 1, cmds = 0;
    load_tag();
    if (!find_factories(err, sizeof err)) return test_fail("%s", err);
    if (!fact[1].ok) f = 0;
    if (!fact[f].ok) return test_fail("no shmem factory");
    memset((void *)isr_ctl, 0, sizeof isr_ctl);
    uint64_t b = fact[f].base, ctl = 0, idle_ms = 120000;
    uint32_t pages = 0, counted = isr_count[f];
    cmdline_u64("shm_idle_ms", &idle_ms);
    printk("SHM ready factory=%s\n", f ? "mmio" : "pci");
    for (;;) {
        if (!WAIT_US(serial_getline(line, &ll, sizeof line), idle_ms * 1000))
            return test_fail("no command on the serial port for %lu ms after %u commands", idle_ms, cmds);
        cmds++;
        const char *p = line;
        if (!strncmp(line, "attach ", 7)) {
            char n[32] = {0};
            unsigned i = 0;
            for (p = line + 7; *p && *p != ' ' && i < 31; p++) n[i++] = *p;
            for (unsigned k = 0; k < 32; k += 4) mmio_write32(b + F_NAME + k, *(uint32_t *)(n + k));
            uint32_t want = (uint32_t)parse_num(&p, 10);
            uint32_t st = request(b, false, want, &ctl, &pages);
            if (st == GSS_OK) isr_ctl[f][0] = ctl;
            printk("SHM attach status=%u idx=%u pages=%u attached=%x\n", st, st ? 99 : mmio_read32(ctl + C_IDX), pages,
                   st ? 0 : isr_attached[f][0]);
        } else if (!ctl) {
            if (!strcmp(line, "end")) break;
            printk("SHM error not attached\n");
        } else if (!strncmp(line, "write ", 6)) {
            p = line + 6;
            uint64_t off = parse_num(&p, 10);
            while (*p == ' ') p++;
            char *d = (char *)(uintptr_t)(ctl + 4096);
            size_t n = strlen(p);
            if (off + n + 1 > (uint64_t)pages * 4096) { printk("SHM error offset\n"); continue; }
            memcpy(d + off, p, n + 1);
            printk("SHM wrote %lu\n", (uint64_t)n);
        } else if (!strncmp(line, "read ", 5)) {
            p = line + 5;
            uint64_t off = parse_num(&p, 10);
            if (off + 64 > (uint64_t)pages * 4096) { printk("SHM error offset\n"); continue; }
            char out[65];
            memcpy(out, (const char *)(uintptr_t)(ctl + 4096 + off), 64);
            out[64] = 0;
            for (unsigned i = 0; out[i]; i++)
                if (out[i] < 32 || out[i] > 126) out[i] = '.';
            printk("SHM read '%s'\n", out);
        } else if (!strncmp(line, "notify ", 7)) {
            p = line + 7;
            uint32_t m = (uint32_t)parse_num(&p, 16);
            mmio_write32(ctl + C_NOTIFY, m);
            printk("SHM notified %x\n", m);
        } else if (!strncmp(line, "wait ", 5)) {
            /* wait N MS: until N interrupts since the last wait */
            p = line + 5;
            uint32_t n = (uint32_t)parse_num(&p, 10);
            uint64_t ms = parse_num(&p, 10);
            bool ok = WAIT_US(isr_count[f] - counted >= n, ms * 1000);
            /* take what the ISR saw and reset it before printing: the runner acts on the line
             * at once, and an interrupt that came in after it must count for the next wait */
            irq_disable();
            uint32_t got = isr_count[f] - counted, pend = isr_pending[f][0], att = isr_attached[f][0];
            counted = isr_count[f];
            isr_pending[f][0] = 0;
            irq_enable();
            printk("SHM wait %s irqs=%u pending=%x attached=%x\n", ok ? "ok" : "timeout", got, pend, att);
        } else if (!strcmp(line, "status")) {
            uint32_t s = mmio_read32(ctl + C_STATUS);
            printk("SHM status pending=%x attached=%x idx=%u\n", s & 0xffff, s >> 16, mmio_read32(ctl + C_IDX));
        } else if (!strcmp(line, "detach")) {
            isr_ctl[f][0] = 0;
            mmio_write32(ctl + C_DETACH, 0);
            ctl = 0;
            printk("SHM detached\n");
        } else if (!strcmp(line, "end")) {
            break;
        } else {
            printk("SHM error unknown command\n");
        }
    }
    if (ctl) {
        isr_ctl[f][0] = 0;
        mmio_write32(ctl + C_DETACH, 0);
    }
    test_pass("%u commands, %u interrupts", cmds, isr_count[f]);
}
GUEST_TEST(shmem_client, test_shmem_client, TEST_NORMAL, "qvm shmem: one client driven over the serial port");

/* ---- bench shmem_pingpong: notify -> interrupt between two VMs (bench/shmem.py) ------------
 * shm_role=pong answers every interrupt from its handler with a notification back; shm_role=ping
 * sends shm_rounds notifications, each after the previous answer, and reports the round trip
 * (median, p99), then copies 1 MiB into and out of the region 64 times (MB/s). shm_dev=qvm: qvm's
 * shmem (PCI factory, region "kbench", 256 pages; MSI-X vector 0, or INTA# with shm_msix=0,
 * whose handler must read status before its EOI); shm_dev=ivshmem: QEMU's ivshmem-doorbell
 * (1af4:1110, BAR0 registers, BAR2 memory, MSI-X vector 0; peer ids from an ivshmem server). */
enum { IV_INTRMASK = 0, IV_INTRSTATUS = 4, IV_IVPOSITION = 8, IV_DOORBELL = 12 };
static struct {
    bool ivshmem, msi;
    uint64_t regs, ctl, mem; /* ivshmem BAR0 / qvm control page; the shared data */
    uint32_t me, peer;
    bool pong;
    volatile uint32_t count;
} pp;

static void pp_ring(void)
{
    if (pp.ivshmem) mmio_write32(pp.regs + IV_DOORBELL, (pp.peer << 16) | 0);
    else mmio_write32(pp.ctl + C_NOTIFY, 1u << pp.peer);
}

static void pp_isr(unsigned vec)
{
    (void)vec;
    if (!pp.msi) (void)mmio_read32(pp.ctl + C_STATUS); /* level INTx: clears the cause before EOI */
    pp.count++;
    if (pp.pong) pp_ring();
}

static uint64_t bar_addr(unsigned dev, unsigned bar)
{
    uint32_t lo = pci_cfg_read32(0, dev, 0, 0x10 + 4 * bar);
    uint64_t a = lo & ~0xfull;
    if ((lo & 6) == 4) a |= (uint64_t)pci_cfg_read32(0, dev, 0, 0x14 + 4 * bar) << 32;
    return a;
}

static const char *pp_open_ivshmem(void)
{
    unsigned dev = 32;
    for (unsigned d = 0; d < 32 && dev == 32; d++)
        if (pci_cfg_read32(0, d, 0, 0) == 0x11101af4) dev = d;
    if (dev == 32) return "no ivshmem-doorbell (1af4:1110) on bus 0";
    pci_cfg_write16(0, dev, 0, 4, (uint16_t)(pci_cfg_read16(0, dev, 0, 4) | 0x6 | 0x400)); /* mem, master, no INTx */
    pp.regs = bar_addr(dev, 0);
    pp.mem = bar_addr(dev, 2);
    if (!pp.regs || !pp.mem) return "ivshmem BARs unassigned";
    if (pp.mem >= (1ull << 32)) { /* the kit maps only 4 GiB: move it into the 32-bit window */
        pci_cfg_write32(0, dev, 0, 0x18, 0xd0000000u | (pci_cfg_read32(0, dev, 0, 0x18) & 0xf));
        pci_cfg_write32(0, dev, 0, 0x1c, 0);
        pp.mem = bar_addr(dev, 2);
    }
    irq_set_handler(VEC_SHM_PCI, pp_isr, EOI_LAPIC);
    if (!msix_setup(dev, VEC_SHM_PCI, false)) return "ivshmem has no MSI-X capability";
    pp.msi = true;
    pp.me = mmio_read32(pp.regs + IV_IVPOSITION);
    pp.peer = pp.me ^ 1;
    return NULL;
}

static const char *pp_open_qvm(char *err, unsigned cap)
{
    if (!find_factories(err, cap)) return err;
    if (!fact[0].ok) return "no shmem PCI factory";
    irq_set_handler(VEC_SHM_PCI, pp_isr, EOI_LAPIC);
    set_name(fact[0].base, "bench");
    uint32_t pages = 0;
    uint32_t st = request(fact[0].base, false, 256, &pp.ctl, &pages);
    if (st != GSS_OK) return "attach of the bench region failed";
    pp.mem = pp.ctl + 4096;
    pp.me = mmio_read32(pp.ctl + C_IDX);
    pp.peer = pp.me ^ 1;
    uint64_t msix = 1;
    cmdline_u64("shm_msix", &msix);
    if (msix) {
        if (!msix_setup(fact_dev, VEC_SHM_PCI, false)) return "no MSI-X on the shmem function";
        pp.msi = true;
    }
    return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void sort_u64(uint64_t *v, unsigned n) /* insertion sort: n is a few thousand at most */
{
    for (unsigned i = 1; i < n; i++)
        for (unsigned j = i; j > 0 && cmp_u64(&v[j - 1], &v[j]) > 0; j--) {
            uint64_t t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
}

static void bench_shmem_pingpong(void)
{
    char err[200] = "";
    const char *dev = cmdline_get("shm_dev"), *role = cmdline_get("shm_role");
    pp.ivshmem = dev && !strncmp(dev, "ivshmem", 7);
    pp.pong = role && !strncmp(role, "pong", 4);
    load_tag();
    const char *e = pp.ivshmem ? pp_open_ivshmem() : pp_open_qvm(err, sizeof err);
    if (e) return test_fail("%s", e);
    printk("SHM bench %s %s me=%u peer=%u\n", pp.ivshmem ? "ivshmem" : "qvm", pp.pong ? "pong" : "ping", pp.me, pp.peer);
    if (pp.pong) {
        char line[40];
        unsigned ll = 0;
        /* the serial port is polled once a millisecond: each poll is a VM exit, and a VMM busy
         * with a stream of them would measure itself rather than the notification path */
        bool ended = false;
        for (uint64_t t0 = now_us(); !ended && now_us() - t0 < 300000000ull; udelay(1000))
            ended = serial_getline(line, &ll, sizeof line) && !strcmp(line, "end");
        return test_pass("pong answered %u notifications%s", pp.count, ended ? "" : " (no 'end' in 300 s)");
    }
    static uint64_t rtt[4096];
    uint64_t rounds = 2000, warm = 200;
    cmdline_u64("shm_rounds", &rounds);
    if (rounds > 4096) rounds = 4096;
    for (uint64_t i = 0; i < warm + rounds; i++) {
        uint32_t c = pp.count;
        uint64_t t0 = rdtsc();
        pp_ring();
        uint64_t deadline = t0 + tsc_khz * 1000; /* 1 s */
        while (pp.count == c && rdtsc() < deadline) cpu_relax();
        if (pp.count == c) return test_fail("no answer to notification %lu within 1 s", i);
        if (i >= warm) rtt[i - warm] = rdtsc() - t0;
    }
    sort_u64(rtt, (unsigned)rounds);
    uint64_t med = rtt[rounds / 2] * 1000000 / tsc_khz, p99 = rtt[rounds * 99 / 100] * 1000000 / tsc_khz;
    bench_report("shm_rtt_median", med, "ns");
    bench_report("shm_rtt_p99", p99, "ns");
    /* copy bandwidth through the shared memory (1 MiB chunks) */
    static uint8_t buf[1 << 20];
    memset(buf, 0x5a, sizeof buf);
    uint64_t t0 = now_us();
    for (int i = 0; i < 64; i++) memcpy((void *)(uintptr_t)pp.mem, buf, sizeof buf);
    uint64_t t1 = now_us();
    for (int i = 0; i < 64; i++) memcpy(buf, (const void *)(uintptr_t)pp.mem, sizeof buf);
    uint64_t t2 = now_us();
    bench_report("shm_copy_in", 64ull * 1000000 / (t1 - t0 ? t1 - t0 : 1), "MiB/s");
    bench_report("shm_copy_out", 64ull * 1000000 / (t2 - t1 ? t2 - t1 : 1), "MiB/s");
    test_pass("%lu round trips: median %lu ns, p99 %lu ns", rounds, med, p99);
}
GUEST_BENCH(shmem_pingpong, bench_shmem_pingpong, "shmem notify round trips between two VMs (bench/shmem.py)");
