/* qvm test guest: platform helpers (LAPIC, IOAPIC, 8259, PIT, ACPI tables). Ring 3. */
#include "guest.h"

/* ---- ACPI ------------------------------------------------------------------------------- */
#define ACPI_MAX_TABLE_LEN (4u << 20)
#define ACPI_MAX_TABLES 64

bool acpi_checksum_ok(const void *p, size_t len)
{
    const uint8_t *b = p;
    uint8_t sum = 0;
    for (size_t i = 0; i < len; i++) sum = (uint8_t)(sum + b[i]);
    return sum == 0;
}

/* A table address we can dereference: mapped (< 4 GiB) with a plausible length. */
bool acpi_table_sane(uint64_t addr)
{
    if (addr < 0x1000 || addr >= 0xffffffffull - sizeof(struct acpi_header)) return false;
    const struct acpi_header *h = (const struct acpi_header *)(uintptr_t)addr;
    return h->length >= sizeof(*h) && h->length <= ACPI_MAX_TABLE_LEN &&
           addr + h->length <= 0x100000000ull;
}

static uint64_t rsdp_scan(uint64_t start, uint64_t len)
{
    for (uint64_t a = start; a + 20 <= start + len; a += 16) {
        const char *p = (const char *)(uintptr_t)a;
        if (!memcmp(p, "RSD PTR ", 8) && acpi_checksum_ok(p, 20)) return a;
    }
    return 0;
}

uint64_t acpi_rsdp(void)
{
    const struct hvm_start_info *si = start_info();
    if (si && si->rsdp_paddr && si->rsdp_paddr < 0xffffffffull - 36) return si->rsdp_paddr;
    uint64_t ebda_ptr = 0x40e;
    __asm__("" : "+r"(ebda_ptr)); /* a fixed low address: hide it from -Warray-bounds */
    uint64_t ebda = (uint64_t)mmio_read16(ebda_ptr) << 4;
    uint64_t r = 0;
    if (ebda >= 0x80000 && ebda < 0xa0000) r = rsdp_scan(ebda, 1024);
    if (!r) r = rsdp_scan(0xe0000, 0x20000);
    return r;
}

static uint64_t acpi_tables[ACPI_MAX_TABLES];
static unsigned acpi_ntables;
static bool acpi_loaded;

static void acpi_load(void)
{
    if (acpi_loaded) return;
    acpi_loaded = true;
    uint64_t rsdp = acpi_rsdp();
    if (!rsdp) return;
    const uint8_t *r = (const uint8_t *)(uintptr_t)rsdp;
    uint8_t rev = r[15];
    uint32_t rsdt = *(const uint32_t *)(r + 16);
    uint64_t xsdt = 0;
    if (rev >= 2) memcpy(&xsdt, r + 24, 8);
    uint64_t root = xsdt ? xsdt : rsdt;
    unsigned esz = xsdt ? 8 : 4;
    if (!acpi_table_sane(root)) return;
    const struct acpi_header *h = (const struct acpi_header *)(uintptr_t)root;
    unsigned n = (h->length - (unsigned)sizeof(*h)) / esz;
    const uint8_t *e = (const uint8_t *)h + sizeof(*h);
    for (unsigned i = 0; i < n && acpi_ntables < ACPI_MAX_TABLES; i++) {
        uint64_t a = 0;
        memcpy(&a, e + i * esz, esz);
        acpi_tables[acpi_ntables++] = a;
    }
}

unsigned acpi_table_count(void)
{
    acpi_load();
    return acpi_ntables;
}

const struct acpi_header *acpi_table_at(unsigned i)
{
    acpi_load();
    if (i >= acpi_ntables || !acpi_table_sane(acpi_tables[i])) return NULL;
    return (const struct acpi_header *)(uintptr_t)acpi_tables[i];
}

const struct acpi_header *acpi_table(const char *sig, unsigned index)
{
    acpi_load();
    for (unsigned i = 0; i < acpi_ntables; i++) {
        const struct acpi_header *h = acpi_table_at(i);
        if (h && !memcmp(h->sig, sig, 4) && index-- == 0) return h;
    }
    return NULL;
}

struct iso {
    uint8_t irq;
    uint32_t gsi;
    uint16_t flags;
};
static struct iso isos[16];
static unsigned nisos;
static bool madt_done;
uint64_t ioapic_base = 0xfec00000;
uint32_t ioapic_gsi_base;

bool madt_parse(struct madt_info *out)
{
    struct madt_info tmp;
    if (!out) out = &tmp;
    memset(out, 0, sizeof *out);
    const struct acpi_header *h = acpi_table("APIC", 0);
    if (!h) return false;
    const uint8_t *p = (const uint8_t *)h;
    out->lapic_addr = *(const uint32_t *)(p + 36);
    bool first_ioapic = true;
    nisos = 0;
    for (uint32_t off = 44; off + 2 <= h->length;) {
        uint8_t type = p[off], len = p[off + 1];
        if (len < 2 || off + len > h->length) return false;
        const uint8_t *e = p + off;
        if (type == 0 && len >= 8) { /* processor local APIC */
            uint32_t flags = *(const uint32_t *)(e + 4);
            if (flags & 3) {
                if (out->cpus < MAX_CPUS) out->apic_ids[out->cpus] = e[3];
                out->cpus++;
            }
        } else if (type == 9 && len >= 16) { /* processor local x2APIC */
            uint32_t flags = *(const uint32_t *)(e + 8);
            if (flags & 3) {
                if (out->cpus < MAX_CPUS) out->apic_ids[out->cpus] = *(const uint32_t *)(e + 4);
                out->cpus++;
            }
        } else if (type == 1 && len >= 12) { /* IOAPIC */
            out->ioapics++;
            if (first_ioapic) {
                ioapic_base = *(const uint32_t *)(e + 4);
                ioapic_gsi_base = *(const uint32_t *)(e + 8);
                first_ioapic = false;
            }
        } else if (type == 2 && len >= 10 && nisos < 16) { /* interrupt source override */
            isos[nisos].irq = e[3];
            isos[nisos].gsi = *(const uint32_t *)(e + 4);
            isos[nisos].flags = *(const uint16_t *)(e + 8);
            nisos++;
        } else if (type == 5 && len >= 12) { /* LAPIC address override */
            memcpy(&out->lapic_addr, e + 4, 8);
        }
        off += len;
    }
    if (out->lapic_addr) lapic_base = out->lapic_addr;
    madt_done = true;
    return true;
}

/* ---- LAPIC ------------------------------------------------------------------------------ */
uint32_t lapic_id(void) { return lapic_read(LAPIC_ID) >> 24; }

/* ---- IOAPIC ----------------------------------------------------------------------------- */
uint32_t ioapic_read(uint32_t reg)
{
    mmio_write32(ioapic_base, reg);
    return mmio_read32(ioapic_base + 0x10);
}
void ioapic_write(uint32_t reg, uint32_t v)
{
    mmio_write32(ioapic_base, reg);
    mmio_write32(ioapic_base + 0x10, v);
}
unsigned ioapic_pins(void) { return ((ioapic_read(1) >> 16) & 0xff) + 1; }

unsigned isa_irq_to_gsi(unsigned irq, uint16_t *flags)
{
    if (!madt_done) madt_parse(NULL);
    if (flags) *flags = 0;
    /* irq0_gsi=N: a machine whose PIT line differs from its MADT (QEMU microvm + KVM wires
     * IRQ 0 to pin 2 without an override entry). The runner passes it per machine. */
    uint64_t g;
    if (irq == 0 && cmdline_u64("irq0_gsi", &g)) return (unsigned)g;
    for (unsigned i = 0; i < nisos; i++)
        if (isos[i].irq == irq) {
            if (flags) *flags = isos[i].flags;
            return isos[i].gsi;
        }
    return irq;
}

bool ioapic_route_isa(unsigned irq, bool masked)
{
    uint16_t flags;
    unsigned gsi = isa_irq_to_gsi(irq, &flags);
    if (gsi < ioapic_gsi_base) return false;
    unsigned pin = gsi - ioapic_gsi_base;
    if (pin >= ioapic_pins()) return false;
    uint32_t lo = VEC_ISA_BASE + irq;
    if ((flags & 3) == 3) lo |= 1u << 13;      /* active low */
    if (((flags >> 2) & 3) == 3) lo |= 1u << 15; /* level */
    if (masked) lo |= 1u << 16;
    ioapic_write(0x11 + 2 * pin, lapic_id() << 24);
    ioapic_write(0x10 + 2 * pin, lo);
    return true;
}

void ioapic_mask_isa(unsigned irq)
{
    unsigned gsi = isa_irq_to_gsi(irq, NULL);
    if (gsi < ioapic_gsi_base) return;
    unsigned pin = gsi - ioapic_gsi_base;
    if (pin >= ioapic_pins()) return;
    ioapic_write(0x10 + 2 * pin, ioapic_read(0x10 + 2 * pin) | (1u << 16));
}

/* ---- 8259 ------------------------------------------------------------------------------- */
void pic_init(void)
{
    outb(0x20, 0x11);
    outb(0xa0, 0x11);
    outb(0x21, VEC_PIC_BASE);
    outb(0xa1, VEC_PIC_BASE + 8);
    outb(0x21, 0x04);
    outb(0xa1, 0x02);
    outb(0x21, 0x01);
    outb(0xa1, 0x01);
    pic_set_mask(0xffff);
}
void pic_set_mask(uint16_t mask)
{
    outb(0x21, (uint8_t)mask);
    outb(0xa1, (uint8_t)(mask >> 8));
}

/* ---- PIT channel 0 ---------------------------------------------------------------------- */
void pit_start(unsigned hz)
{
    unsigned div = 1193182 / hz;
    outb(0x43, 0x34); /* ch0, lo/hi, mode 2 */
    outb(0x40, div & 0xff);
    outb(0x40, (uint8_t)(div >> 8));
}
void pit_stop(void)
{
    outb(0x43, 0x30); /* ch0, mode 0, count never reloaded: one final edge at most */
    outb(0x40, 0xff);
    outb(0x40, 0xff);
}
