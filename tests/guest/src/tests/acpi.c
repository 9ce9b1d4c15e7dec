/* Platform description tests.
 *   acpi  RSDP (PVH rsdp_paddr or EBDA/0xE0000 scan) -> XSDT/RSDT -> every table and the DSDT
 *         (from the FADT) have valid checksums; the MADT lists cpus=N enabled processors
 *   e820  the PVH memory map: RAM (type 1) adds up to the configured mem=SIZE (within 2 MiB,
 *         the legacy hole and firmware reservations) and nothing overlaps */
#include "guest.h"

static void test_acpi(void)
{
    uint64_t rsdp = acpi_rsdp();
    if (!rsdp) return test_fail("no RSDP (start info or BIOS area scan)");
    const uint8_t *r = (const uint8_t *)(uintptr_t)rsdp;
    if (memcmp(r, "RSD PTR ", 8) || !acpi_checksum_ok(r, 20)) return test_fail("bad RSDP at %lx", rsdp);
    if (r[15] >= 2) {
        uint32_t len = *(const uint32_t *)(r + 20);
        if (len < 36 || len > 4096 || !acpi_checksum_ok(r, len)) return test_fail("bad RSDP extended checksum");
    }
    unsigned n = acpi_table_count();
    if (n == 0) return test_fail("RSDT/XSDT missing or empty");
    char sigs[128];
    size_t sl = 0;
    sigs[0] = 0;
    const struct acpi_header *fadt = NULL;
    for (unsigned i = 0; i < n; i++) {
        const struct acpi_header *h = acpi_table_at(i);
        if (!h) return test_fail("table %u has an unusable address", i);
        if (!acpi_checksum_ok(h, h->length)) return test_fail("table %.4s bad checksum", h->sig);
        if (!memcmp(h->sig, "FACP", 4)) fadt = h;
        if (sl + 6 < sizeof sigs) {
            memcpy(sigs + sl, h->sig, 4);
            sl += 4;
            sigs[sl++] = ',';
            sigs[sl] = 0;
        }
    }
    if (!fadt) return test_fail("no FADT (tables %s)", sigs);
    const uint8_t *f = (const uint8_t *)fadt;
    uint64_t dsdt = *(const uint32_t *)(f + 40);
    if (fadt->length >= 148) {
        uint64_t x;
        memcpy(&x, f + 140, 8);
        if (x) dsdt = x;
    }
    if (!acpi_table_sane(dsdt)) return test_fail("FADT points to no DSDT");
    const struct acpi_header *d = (const struct acpi_header *)(uintptr_t)dsdt;
    if (memcmp(d->sig, "DSDT", 4) || !acpi_checksum_ok(d, d->length)) return test_fail("DSDT bad");
    struct madt_info mi;
    if (!madt_parse(&mi)) return test_fail("no valid MADT (tables %s)", sigs);
    uint64_t want;
    if (cmdline_u64("cpus", &want) && want != mi.cpus)
        return test_fail("MADT lists %u CPUs, expected cpus=%lu", mi.cpus, want);
    if (sl) sigs[sl - 1] = 0;
    test_pass("rsdp=%lx rev=%u tables=%s,DSDT cpus=%u ioapics=%u", rsdp, r[15], sigs, mi.cpus, mi.ioapics);
}
GUEST_TEST(acpi, test_acpi, TEST_NORMAL, "ACPI tables, checksums, MADT CPU count");

static void test_e820(void)
{
    const struct hvm_start_info *si = start_info();
    if (si->version < 1 || !si->memmap_paddr || !si->memmap_entries)
        return test_fail("PVH start info v%u has no memory map", si->version);
    if (si->memmap_entries > 128) return test_fail("%u memory map entries", si->memmap_entries);
    const struct hvm_memmap_entry *m = (const struct hvm_memmap_entry *)(uintptr_t)si->memmap_paddr;
    uint64_t ram = 0, top = 0;
    for (unsigned i = 0; i < si->memmap_entries; i++) {
        printk("INFO e820 %016lx-%016lx type %u\n", m[i].addr, m[i].addr + m[i].size, m[i].type);
        if (m[i].addr + m[i].size < m[i].addr) return test_fail("entry %u wraps", i);
        for (unsigned j = 0; j < i; j++)
            if (m[i].addr < m[j].addr + m[j].size && m[j].addr < m[i].addr + m[i].size && m[i].size && m[j].size)
                return test_fail("entries %u and %u overlap", j, i);
        if (m[i].type == 1) {
            ram += m[i].size;
            if (m[i].addr + m[i].size > top) top = m[i].addr + m[i].size;
        }
    }
    /* our own image must lie in RAM */
    extern char __image_start[], __image_end[];
    bool img = false;
    for (unsigned i = 0; i < si->memmap_entries; i++)
        if (m[i].type == 1 && m[i].addr <= (uintptr_t)__image_start && (uintptr_t)__image_end <= m[i].addr + m[i].size)
            img = true;
    if (!img) return test_fail("the guest image is not inside a RAM entry");
    uint64_t want;
    if (!cmdline_u64("mem", &want)) return test_fail("no mem= expectation on the command line");
    if (ram > want || ram + (2u << 20) < want)
        return test_fail("RAM %lu KiB in %u entries, expected mem=%lu KiB (-2 MiB)", ram >> 10, si->memmap_entries,
                         want >> 10);
    test_pass("ram=%lu KiB top=%lx entries=%u", ram >> 10, top, si->memmap_entries);
}
GUEST_TEST(e820, test_e820, TEST_NORMAL, "PVH/e820 memory map matches mem=");
