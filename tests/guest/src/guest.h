/* qvm test guest: common API for tests (ring 3 unless noted). See docs/testing.md. */
#ifndef QVM_GUEST_H
#define QVM_GUEST_H

#include <stdint.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdarg.h>

#include "layout.h"

/* ---- port and memory-mapped I/O (ring 3 works: IOPL 3, all pages user-mapped) ------------ */
static inline void outb(uint16_t port, uint8_t v) { __asm__ volatile("outb %0, %1" ::"a"(v), "Nd"(port)); }
static inline void outw(uint16_t port, uint16_t v) { __asm__ volatile("outw %0, %1" ::"a"(v), "Nd"(port)); }
static inline void outl(uint16_t port, uint32_t v) { __asm__ volatile("outl %0, %1" ::"a"(v), "Nd"(port)); }
static inline uint8_t inb(uint16_t port) { uint8_t v; __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port)); return v; }
static inline uint16_t inw(uint16_t port) { uint16_t v; __asm__ volatile("inw %1, %0" : "=a"(v) : "Nd"(port)); return v; }
static inline uint32_t inl(uint16_t port) { uint32_t v; __asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port)); return v; }
static inline uint32_t mmio_read32(uint64_t a) { return *(volatile uint32_t *)(uintptr_t)a; }
static inline void mmio_write32(uint64_t a, uint32_t v) { *(volatile uint32_t *)(uintptr_t)a = v; }
static inline uint8_t mmio_read8(uint64_t a) { return *(volatile uint8_t *)(uintptr_t)a; }
static inline uint16_t mmio_read16(uint64_t a) { return *(volatile uint16_t *)(uintptr_t)a; }
static inline void mmio_write8(uint64_t a, uint8_t v) { *(volatile uint8_t *)(uintptr_t)a = v; }
static inline void mmio_write16(uint64_t a, uint16_t v) { *(volatile uint16_t *)(uintptr_t)a = v; }
static inline uint64_t rdtsc(void) { uint32_t lo, hi; __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi)); return ((uint64_t)hi << 32) | lo; }
static inline void cpu_relax(void) { __asm__ volatile("pause" ::: "memory"); }
static inline void irq_enable(void) { __asm__ volatile("sti" ::: "memory"); }
static inline void irq_disable(void) { __asm__ volatile("cli" ::: "memory"); }
static inline void cpuid(uint32_t leaf, uint32_t sub, uint32_t r[4])
{
    __asm__ volatile("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3]) : "a"(leaf), "c"(sub));
}

/* ---- small libc ------------------------------------------------------------------------- */
void *memset(void *d, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
int strcmp(const char *a, const char *b);
int strncmp(const char *a, const char *b, size_t n);
int vsnprintf(char *buf, size_t size, const char *fmt, va_list ap);
int snprintf(char *buf, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* ---- console (COM1) and results --------------------------------------------------------- */
#define COM1 0x3f8
void serial_init(void);
void serial_write(const char *s, size_t n);
void serial_use_pio(bool on); /* console bytes by ring-3 port I/O instead of the syscall */
void printk(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A whole line from COM1, polled (no interrupts): bytes go into buf (len so far in *len, CR
 * dropped); true once a newline completed it (then *len is 0 again and buf NUL-terminated). */
bool serial_getline(char *buf, unsigned *len, unsigned cap);
/* Each test reports exactly once: "TEST <name> PASS|FAIL <detail>". */
void test_pass(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void test_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* For tests that end the VM (reset, power-off): "TEST <name> PENDING <detail>". */
void test_pending(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void bench_report(const char *name, uint64_t value, const char *unit);

/* exit port (QEMU isa-debug-exit / qvm testdev): 32-bit write of the status */
#define EXIT_PORT 0xf4
#define STATUS_PASS 0
#define STATUS_FAIL 1
#define STATUS_CRASH 2
#define STATUS_BADCMD 3
void guest_exit(uint32_t status) __attribute__((noreturn));

/* ---- MSRs from ring 0 (int $0x80): *faulted = 1 if the access raised #GP ---------------------- */
static inline uint64_t msr_read(uint32_t msr, bool *faulted)
{
    uint64_t rax = 2, rdx;
    __asm__ volatile("int $0x80" : "+a"(rax), "=d"(rdx) : "D"((uint64_t)msr) : "memory");
    *faulted = rdx != 0;
    return rax;
}
static inline bool msr_write(uint32_t msr, uint64_t v) /* true if it faulted */
{
    uint64_t rax = 3;
    __asm__ volatile("int $0x80" : "+a"(rax) : "D"((uint64_t)msr), "S"(v) : "memory");
    return rax != 0;
}

/* An instruction KVM's emulator cannot run (popcnt with a memory operand) on memory-mapped `addr`,
 * from ring 0 (int $0x80): *ud = 1 if it raised #UD. */
static inline uint32_t insn_unemulatable(uint64_t addr, bool *ud)
{
    uint64_t rax = 4, rdx;
    __asm__ volatile("int $0x80" : "+a"(rax), "=d"(rdx) : "D"(addr) : "memory");
    *ud = rdx != 0;
    return (uint32_t)rax;
}

/* ---- time ------------------------------------------------------------------------------- */
extern uint64_t tsc_khz;          /* calibrated at start-up */
extern const char *tsc_source;    /* "cpuid" | "pit" | "assumed" */
void time_init(void);
uint64_t now_us(void);
void udelay(uint64_t us);
/* Spin until *flag-like condition or timeout; returns elapsed us. Usage:
 *   WAIT_US(cond, timeout_us) -> true if cond became true in time. */
#define WAIT_US(cond, timeout_us)                                                 \
    ({                                                                            \
        uint64_t _t0 = now_us();                                                  \
        bool _ok = false;                                                         \
        for (;;) {                                                                \
            if (cond) { _ok = true; break; }                                      \
            if (now_us() - _t0 > (uint64_t)(timeout_us)) break;                   \
            cpu_relax();                                                          \
        }                                                                         \
        _ok;                                                                      \
    })

/* ---- command line ----------------------------------------------------------------------- */
const char *cmdline_get(const char *key); /* value of key=..., up to space; NULL if absent */
bool cmdline_u64(const char *key, uint64_t *out);
bool list_contains(const char *list, const char *item); /* exact item of a comma list */

/* ---- PVH start info --------------------------------------------------------------------- */
struct hvm_start_info {
    uint32_t magic;
    uint32_t version;
    uint32_t flags;
    uint32_t nr_modules;
    uint64_t modlist_paddr;
    uint64_t cmdline_paddr;
    uint64_t rsdp_paddr;
    uint64_t memmap_paddr;
    uint32_t memmap_entries;
    uint32_t reserved;
};
struct hvm_memmap_entry {
    uint64_t addr;
    uint64_t size;
    uint32_t type;
    uint32_t reserved;
};
struct hvm_modlist_entry {
    uint64_t paddr;
    uint64_t size;
    uint64_t cmdline_paddr;
    uint64_t reserved;
};
#define HVM_START_MAGIC 0x336ec578
extern uint32_t pvh_start_info; /* physical address, set by boot.S */
/* PVH start info; after a multiboot boot, the multiboot information converted to it */
const struct hvm_start_info *start_info(void);

/* ---- multiboot v1 (the multiboot build: multiboot.S) ----------------------------------- */
struct multiboot_info {
    uint32_t flags;
    uint32_t mem_lower, mem_upper; /* KiB: from 0, and contiguous from 1 MiB */
    uint32_t boot_device;
    uint32_t cmdline;
    uint32_t mods_count, mods_addr;
    uint32_t syms[4];
    uint32_t mmap_length, mmap_addr;
    uint32_t drives_length, drives_addr;
    uint32_t config_table;
    uint32_t boot_loader_name;
} __attribute__((packed));
struct multiboot_module {
    uint32_t mod_start, mod_end, string, reserved;
};
#define MB_INFO_MEMORY (1u << 0)
#define MB_INFO_CMDLINE (1u << 2)
#define MB_INFO_MODS (1u << 3)
#define MB_INFO_MMAP (1u << 6)
#define MB_INFO_LOADER_NAME (1u << 9)
extern uint32_t mb_info; /* physical address of struct multiboot_info; 0 after a PVH boot */
const struct multiboot_info *multiboot_info(void);

/* ---- interrupts ------------------------------------------------------------------------- */
enum eoi_kind { EOI_NONE, EOI_LAPIC, EOI_PIC_MASTER, EOI_PIC_SLAVE };
typedef void (*irq_handler_t)(unsigned vec);
/* Handlers run in ring 0 (emulated on PVM): keep them tiny. */
void irq_set_handler(unsigned vec, irq_handler_t h, enum eoi_kind eoi);
extern volatile uint32_t irq_count[256];

/* LAPIC */
#define LAPIC_ID 0x20
#define LAPIC_VER 0x30
#define LAPIC_TPR 0x80
#define LAPIC_EOI 0xb0
#define LAPIC_SVR 0xf0
#define LAPIC_ESR 0x280
#define LAPIC_ICR_LO 0x300
#define LAPIC_ICR_HI 0x310
#define LAPIC_LVT_TIMER 0x320
#define LAPIC_LVT_LINT0 0x350
#define LAPIC_LVT_LINT1 0x360
#define LAPIC_LVT_ERR 0x370
#define LAPIC_TIMER_INIT 0x380
#define LAPIC_TIMER_CUR 0x390
#define LAPIC_TIMER_DIV 0x3e0
extern uint64_t lapic_base;
static inline uint32_t lapic_read(uint32_t reg) { return mmio_read32(lapic_base + reg); }
static inline void lapic_write(uint32_t reg, uint32_t v) { mmio_write32(lapic_base + reg, v); }
uint32_t lapic_id(void);

/* IOAPIC (first one found in the MADT, else 0xfec00000) */
extern uint64_t ioapic_base;
extern uint32_t ioapic_gsi_base;
uint32_t ioapic_read(uint32_t reg);
void ioapic_write(uint32_t reg, uint32_t v);
unsigned ioapic_pins(void);
/* Route ISA IRQ (honouring MADT interrupt source overrides) to VEC_ISA_BASE+irq on the BSP. */
bool ioapic_route_isa(unsigned irq, bool masked);
void ioapic_mask_isa(unsigned irq);
unsigned isa_irq_to_gsi(unsigned irq, uint16_t *flags);

/* 8259 */
void pic_init(void);  /* remap to VEC_PIC_BASE, mask all */
void pic_set_mask(uint16_t mask);

/* PIT channel 0 periodic at hz (mode 2) / stop */
void pit_start(unsigned hz);
void pit_stop(void);

/* ---- ACPI ------------------------------------------------------------------------------- */
struct acpi_header {
    char sig[4];
    uint32_t length;
    uint8_t revision;
    uint8_t checksum;
    char oem_id[6];
    char oem_table_id[8];
    uint32_t oem_revision;
    uint32_t creator_id;
    uint32_t creator_revision;
} __attribute__((packed));
uint64_t acpi_rsdp(void);                   /* 0 if none */
const struct acpi_header *acpi_table(const char *sig, unsigned index);
unsigned acpi_table_count(void);
const struct acpi_header *acpi_table_at(unsigned i);
bool acpi_checksum_ok(const void *p, size_t len);
bool acpi_table_sane(uint64_t addr);

struct madt_info {
    unsigned cpus;              /* enabled (or online-capable) processor entries */
    uint32_t apic_ids[MAX_CPUS];
    unsigned ioapics;
    uint64_t lapic_addr;
};
bool madt_parse(struct madt_info *out);

/* ---- PCI (tests/pci.c) ---------------------------------------------------------------- */
uint32_t pci_cfg_read32(unsigned bus, unsigned dev, unsigned fn, unsigned off);
uint16_t pci_cfg_read16(unsigned bus, unsigned dev, unsigned fn, unsigned off);
uint8_t pci_cfg_read8(unsigned bus, unsigned dev, unsigned fn, unsigned off);
void pci_cfg_write32(unsigned bus, unsigned dev, unsigned fn, unsigned off, uint32_t v);
void pci_cfg_write16(unsigned bus, unsigned dev, unsigned fn, unsigned off, uint16_t v);
void pci_cfg_write8(unsigned bus, unsigned dev, unsigned fn, unsigned off, uint8_t v);

/* ---- the debugger test (tests/debug.c): a ud2 the #UD handler counts and steps over ---- */
extern char dbg_ud2[];
extern volatile uint32_t dbg_faults;

/* ---- SMP -------------------------------------------------------------------------------- */
extern volatile uint32_t ap_started;
extern volatile uint32_t ap_apic_ids[MAX_CPUS];

/* ---- test registry ---------------------------------------------------------------------- */
enum test_kind { TEST_NORMAL = 0, TEST_TERMINAL = 1 /* ends the VM: runs last, alone */, TEST_BENCH = 2 };
struct guest_test {
    const char *name;
    void (*fn)(void);
    enum test_kind kind;
    const char *help;
};
#define GUEST_TEST(nm, func, knd, hlp)                                                  \
    static const struct guest_test __guest_test_##nm                                     \
        __attribute__((used, section(".guest_tests." #nm), aligned(8))) = {#nm, func, knd, hlp}
/* A benchmark may share its name with a test (bench=virtio_blk vs tests=virtio_blk). */
#define GUEST_BENCH(nm, func, hlp)                                                        \
    static const struct guest_test __guest_bench_##nm                                    \
        __attribute__((used, section(".guest_tests.~bench." #nm), aligned(8))) = {#nm, func, TEST_BENCH, hlp}

#endif
