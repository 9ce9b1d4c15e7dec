/* PCI enumeration: bus 0 through configuration mechanism #1 (0xCF8/0xCFC); every function's
 * ID/class via ECAM (MCFG) must match. Optional expectation pci_min=N functions. Later tests
 * (virtio-pci, QNX shmem 1C05:0001) use pci_cfg_read32() and the accessors below. */
#include "guest.h"

uint32_t pci_cfg_read32(unsigned bus, unsigned dev, unsigned fn, unsigned off)
{
    outl(0xcf8, 0x80000000u | (bus << 16) | (dev << 11) | (fn << 8) | (off & 0xfc));
    return inl(0xcfc);
}

uint16_t pci_cfg_read16(unsigned bus, unsigned dev, unsigned fn, unsigned off)
{
    return (uint16_t)(pci_cfg_read32(bus, dev, fn, off) >> (8 * (off & 2)));
}

uint8_t pci_cfg_read8(unsigned bus, unsigned dev, unsigned fn, unsigned off)
{
    return (uint8_t)(pci_cfg_read32(bus, dev, fn, off) >> (8 * (off & 3)));
}

static void cf8_select(unsigned bus, unsigned dev, unsigned fn, unsigned off)
{
    outl(0xcf8, 0x80000000u | (bus << 16) | (dev << 11) | (fn << 8) | (off & 0xfc));
}

void pci_cfg_write32(unsigned bus, unsigned dev, unsigned fn, unsigned off, uint32_t v)
{
    cf8_select(bus, dev, fn, off);
    outl(0xcfc, v);
}

/* naturally aligned sub-dword writes touch only their bytes (no read-modify-write of status) */
void pci_cfg_write16(unsigned bus, unsigned dev, unsigned fn, unsigned off, uint16_t v)
{
    cf8_select(bus, dev, fn, off);
    outw((uint16_t)(0xcfc + (off & 2)), v);
}

void pci_cfg_write8(unsigned bus, unsigned dev, unsigned fn, unsigned off, uint8_t v)
{
    cf8_select(bus, dev, fn, off);
    outb((uint16_t)(0xcfc + (off & 3)), v);
}

static void test_pci(void)
{
    const struct acpi_header *mcfg = acpi_table("MCFG", 0);
    uint64_t ecam = 0;
    unsigned ecam_start = 0, ecam_end = 0;
    if (mcfg && mcfg->length >= 44 + 16) {
        const uint8_t *e = (const uint8_t *)mcfg + 44;
        memcpy(&ecam, e, 8);
        uint16_t seg = *(const uint16_t *)(e + 8);
        ecam_start = e[10];
        ecam_end = e[11];
        if (seg != 0 || ecam >= 0x100000000ull) ecam = 0;
    }
    unsigned found = 0, mismatches = 0;
    uint32_t hb = 0;
    char list[120];
    size_t ll = 0;
    list[0] = 0;
    for (unsigned dev = 0; dev < 32; dev++) {
        for (unsigned fn = 0; fn < 8; fn++) {
            uint32_t id = pci_cfg_read32(0, dev, fn, 0);
            if ((id & 0xffff) == 0xffff) {
                if (fn == 0) break;
                continue;
            }
            uint32_t cls = pci_cfg_read32(0, dev, fn, 8);
            found++;
            if (dev == 0 && fn == 0) hb = cls >> 16;
            if (ll < sizeof list - 16)
                ll += (size_t)snprintf(list + ll, sizeof list - ll, "%x:%x.%x=%04x:%04x ", 0, dev, fn, id & 0xffff, id >> 16);
            if (ecam && ecam_start == 0) {
                uint64_t a = ecam + ((uint64_t)dev << 15) + ((uint64_t)fn << 12);
                if (mmio_read32(a) != id || mmio_read32(a + 8) != cls) mismatches++;
            }
            if (fn == 0 && !(pci_cfg_read32(0, dev, 0, 0xc) & 0x00800000)) break; /* single function */
        }
    }
    uint64_t min = 1;
    cmdline_u64("pci_min", &min);
    if (found < min) return test_fail("%u functions on bus 0, expected >= %lu", found, min);
    if (hb != 0x0600) return test_fail("00:00.0 class %04x is not a host bridge (0600)", hb);
    if (!ecam) return test_fail("no usable MCFG (ECAM) entry");
    if (mismatches) return test_fail("%u functions differ between CF8 and ECAM", mismatches);
    test_pass("functions=%u ecam=%lx buses=%u-%u %s", found, ecam, ecam_start, ecam_end, list);
}
GUEST_TEST(pci, test_pci, TEST_NORMAL, "PCI bus 0 via CF8/CFC and ECAM");
