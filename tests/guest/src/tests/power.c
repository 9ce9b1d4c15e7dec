/* Tests that end the VM (TEST_TERMINAL: run last, only when everything else passed). Each prints
 * "TEST <name> PENDING ..." and then triggers the action; the runner checks that the VMM then
 * exits as after a guest shutdown/reset (QEMU with -no-reboot: status 0; qvm: exit code 0).
 *   poweroff     ACPI S5: SLP_TYP from the DSDT \_S5_ package, written with SLP_EN to
 *                PM1a_CNT (or the FADT sleep control register on hardware-reduced ACPI)
 *   reset_i8042  keyboard controller pulse: 0xFE to port 0x64
 *   reset_acpi   the FADT reset register (RESET_REG / RESET_VALUE) */
#include "guest.h"

struct gas {
    uint8_t space, bit_width, bit_offset, access_size;
    uint64_t address;
} __attribute__((packed));

static const uint8_t *fadt(void)
{
    const struct acpi_header *h = acpi_table("FACP", 0);
    return (const uint8_t *)h;
}

static bool gas_write8(const struct gas *g, uint8_t v)
{
    if (!g->address) return false;
    if (g->space == 1 && g->address < 0x10000) outb((uint16_t)g->address, v);
    else if (g->space == 0 && g->address < 0x100000000ull) *(volatile uint8_t *)(uintptr_t)g->address = v;
    else return false;
    return true;
}

/* AML: NameOp? "_S5_" PackageOp PkgLength NumElements <SLP_TYPa> ... (bounded scan) */
static int find_s5_slp_typ(const struct acpi_header *dsdt)
{
    const uint8_t *p = (const uint8_t *)dsdt;
    uint32_t len = dsdt->length;
    for (uint32_t i = sizeof(*dsdt); i + 8 < len; i++) {
        if (memcmp(p + i, "_S5_", 4) || p[i + 4] != 0x12) continue;
        uint32_t j = i + 5;
        j += 1u + (p[j] >> 6); /* PkgLength: lead byte + 0..3 follow bytes */
        j += 1;                /* NumElements */
        if (j + 1 >= len) return -1;
        switch (p[j]) {
        case 0x0a: return p[j + 1]; /* BytePrefix */
        case 0x00: return 0;        /* ZeroOp */
        case 0x01: return 1;        /* OneOp */
        default: return p[j] < 8 ? p[j] : -1;
        }
    }
    return -1;
}

static void test_poweroff(void)
{
    const uint8_t *f = fadt();
    if (!f) return test_fail("no FADT");
    const struct acpi_header *fh = (const struct acpi_header *)f;
    uint64_t dsdt = *(const uint32_t *)(f + 40);
    if (fh->length >= 148) {
        uint64_t x;
        memcpy(&x, f + 140, 8);
        if (x) dsdt = x;
    }
    if (!acpi_table_sane(dsdt)) return test_fail("no DSDT");
    int typ = find_s5_slp_typ((const struct acpi_header *)(uintptr_t)dsdt);
    if (typ < 0) return test_fail("no \\_S5_ package in the DSDT");
    uint32_t flags = *(const uint32_t *)(f + 112);
    uint32_t pm1a = *(const uint32_t *)(f + 64);
    if (fh->length >= 184) {
        const struct gas *x = (const struct gas *)(f + 172);
        if (x->address && x->space == 1) pm1a = (uint32_t)x->address;
    }
    if (pm1a && pm1a < 0x10000) {
        test_pending("S5 SLP_TYP=%d via PM1a_CNT %x", typ, pm1a);
        uint16_t v = inw((uint16_t)pm1a);
        outw((uint16_t)pm1a, (uint16_t)((v & ~0x1c00) | ((typ & 7) << 10) | (1u << 13)));
    } else if ((flags & (1u << 20)) && fh->length >= 256) {
        const struct gas *sc = (const struct gas *)(f + 244);
        test_pending("S5 SLP_TYP=%d via sleep control register %lx (hw-reduced)", typ, sc->address);
        if (!gas_write8(sc, (uint8_t)(((typ & 7) << 2) | (1u << 5))))
            return test_fail("unusable sleep control register");
    } else {
        return test_fail("no PM1a_CNT and no sleep control register");
    }
    udelay(1000000);
    test_fail("still running 1 s after the S5 request");
}
GUEST_TEST(poweroff, test_poweroff, TEST_TERMINAL, "ACPI S5 power-off");

static void test_reset_i8042(void)
{
    uint8_t st = inb(0x64);
    if (st == 0xff) return test_fail("no i8042 at port 0x64 (status reads 0xff)");
    WAIT_US(!(inb(0x64) & 0x02), 100000);
    test_pending("pulse reset line: 0xfe -> port 0x64 (status %x)", st);
    outb(0x64, 0xfe);
    udelay(1000000);
    test_fail("still running 1 s after the i8042 reset command");
}
GUEST_TEST(reset_i8042, test_reset_i8042, TEST_TERMINAL, "reset via the keyboard controller");

static void test_reset_acpi(void)
{
    const uint8_t *f = fadt();
    if (!f) return test_fail("no FADT");
    const struct acpi_header *fh = (const struct acpi_header *)f;
    uint32_t flags = *(const uint32_t *)(f + 112);
    if (fh->length < 129 || !(flags & (1u << 10))) return test_fail("FADT has no reset register (flags %x)", flags);
    const struct gas *g = (const struct gas *)(f + 116);
    uint8_t val = f[128];
    test_pending("RESET_REG space %u addr %lx value %x", g->space, g->address, val);
    if (!gas_write8(g, val)) return test_fail("unusable RESET_REG");
    udelay(1000000);
    test_fail("still running 1 s after writing the reset register");
}
GUEST_TEST(reset_acpi, test_reset_acpi, TEST_TERMINAL, "reset via the FADT reset register");
