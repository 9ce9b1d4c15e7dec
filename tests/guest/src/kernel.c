/* qvm test guest, ring 0 part: IDT/TSS set-up, interrupt dispatch, AP entry.
 * On PVM hosts this code runs in KVM's instruction emulator: keep it minimal and plain
 * (no int3, no SSE, no string tricks beyond rep stos/movs). */
#include "guest.h"

struct idt_entry {
    uint16_t off_lo, sel;
    uint8_t ist, type_attr;
    uint16_t off_mid;
    uint32_t off_hi, zero;
} __attribute__((packed));

struct tss64 {
    uint32_t reserved0;
    uint64_t rsp0, rsp1, rsp2;
    uint64_t reserved1;
    uint64_t ist[7];
    uint64_t reserved2;
    uint16_t reserved3, iomap_base;
} __attribute__((packed));

struct isr_frame {
    uint64_t r15, r14, r13, r12, r11, r10, r9, r8, rdi, rsi, rbp, rbx, rdx, rcx, rax;
    uint64_t vec, err, rip, cs, rflags, rsp, ss;
};

extern char isr_stubs[];
extern char kstack_top[];
extern uint64_t gdt_tss[2];

static struct idt_entry idt[256] __attribute__((aligned(16)));
static struct tss64 tss __attribute__((aligned(16)));
static struct {
    uint16_t limit;
    uint64_t base;
} __attribute__((packed)) idt_desc;

volatile uint32_t irq_count[256];
static irq_handler_t irq_handlers[256];
static uint8_t irq_eoi[256];
uint64_t lapic_base = 0xfee00000;

void irq_set_handler(unsigned vec, irq_handler_t h, enum eoi_kind eoi)
{
    if (vec > 255) return;
    irq_handlers[vec] = h;
    irq_eoi[vec] = (uint8_t)eoi;
}

void kernel_init(void)
{
    for (unsigned v = 0; v < 256; v++) {
        uint64_t a = (uint64_t)(uintptr_t)isr_stubs + 16u * v;
        idt[v].off_lo = (uint16_t)a;
        idt[v].sel = SEL_KCODE64;
        idt[v].ist = 0;
        idt[v].type_attr = 0x8e; /* present, DPL 0, 64-bit interrupt gate */
        idt[v].off_mid = (uint16_t)(a >> 16);
        idt[v].off_hi = (uint32_t)(a >> 32);
        idt[v].zero = 0;
    }
    idt[VEC_SYSCALL].type_attr = 0xee; /* DPL 3: int $0x80 from ring 3 */
    /* DPL 3 for #BP as real OSes set it: an int3 in ring 3 raises #BP (which a debugger behind
     * the VMM intercepts), not a #GP for the gate's privilege */
    idt[3].type_attr = 0xee;
    idt_desc.limit = sizeof(idt) - 1;
    idt_desc.base = (uint64_t)(uintptr_t)idt;
    __asm__ volatile("lidt %0" ::"m"(idt_desc));

    tss.rsp0 = (uint64_t)(uintptr_t)kstack_top;
    tss.iomap_base = sizeof(tss); /* no I/O bitmap: IOPL 3 governs port access */
    uint64_t base = (uint64_t)(uintptr_t)&tss, limit = sizeof(tss) - 1;
    gdt_tss[0] = (limit & 0xffff) | ((base & 0xffffff) << 16) | (0x89ull << 40) |
                 (((limit >> 16) & 0xf) << 48) | (((base >> 24) & 0xff) << 56);
    gdt_tss[1] = base >> 32;
    __asm__ volatile("ltr %w0" ::"r"(SEL_TSS));
}

static void k_putc(char c)
{
    for (int i = 0; i < 100000 && !(inb(COM1 + 5) & 0x20); i++) {
    }
    outb(COM1, (uint8_t)c);
}
static void k_puts(const char *s) { while (*s) k_putc(*s++); }
static void k_hex(uint64_t v)
{
    k_puts("0x");
    for (int i = 60; i >= 0; i -= 4) k_putc("0123456789abcdef"[(v >> i) & 0xf]);
}

/* Port I/O from ring 3. With IOPL 3 it runs natively (VMX/SVM hosts). PVM forces the hardware
 * IOPL to 0 in guest user mode, so there IN/OUT (and CLI/STI) raise #GP: perform them here and
 * step over the instruction. Returns false for anything else (a real #GP). */
static bool emulate_user_io(struct isr_frame *f)
{
    const uint8_t *ip = (const uint8_t *)(uintptr_t)f->rip;
    unsigned len = 0, size = 4;
    if (ip[0] == 0x66) size = 2, len = 1;
    uint8_t op = ip[len++];
    uint16_t port;
    switch (op) {
    case 0xfa: /* cli */
        f->rflags &= ~0x200ull;
        f->rip += len;
        return true;
    case 0xfb: /* sti */
        f->rflags |= 0x200;
        f->rip += len;
        return true;
    case 0xe4: case 0xe5: case 0xe6: case 0xe7: port = ip[len++]; break;
    case 0xec: case 0xed: case 0xee: case 0xef: port = (uint16_t)f->rdx; break;
    default: return false;
    }
    if (!(op & 1)) size = 1;
    if (op & 2) { /* out */
        if (size == 1) outb(port, (uint8_t)f->rax);
        else if (size == 2) outw(port, (uint16_t)f->rax);
        else outl(port, (uint32_t)f->rax);
    } else {
        if (size == 1) f->rax = (f->rax & ~0xffull) | inb(port);
        else if (size == 2) f->rax = (f->rax & ~0xffffull) | inw(port);
        else f->rax = inl(port);
    }
    f->rip += len;
    return true;
}

/* rdmsr/wrmsr from ring 0 that may fault: a #GP at one of these two instructions is taken as the
 * answer (msr_faulted) and execution goes on after it (isr_dispatch). */
extern char msr_rd_insn[], msr_wr_insn[];
static volatile int msr_faulted;
__attribute__((noinline)) static uint64_t k_rdmsr(uint32_t msr)
{
    uint32_t lo = 0, hi = 0;
    __asm__ volatile(".globl msr_rd_insn\nmsr_rd_insn: rdmsr" : "+a"(lo), "+d"(hi) : "c"(msr) : "memory");
    return ((uint64_t)hi << 32) | lo;
}
__attribute__((noinline)) static void k_wrmsr(uint32_t msr, uint64_t v)
{
    __asm__ volatile(".globl msr_wr_insn\nmsr_wr_insn: wrmsr" ::"c"(msr), "a"((uint32_t)v), "d"((uint32_t)(v >> 32))
                     : "memory");
}

/* popcnt %eax, (rdi) (f3 0f b8 07) on a memory-mapped address: KVM's instruction emulator has no
 * popcnt, so it gives up, and qvm's `unsupported instruction` decides (tests/insn.c). A #UD here is
 * caught (insn_faulted) and the 4 bytes skipped. */
extern char insn_ud_insn[];
static volatile int insn_faulted;
__attribute__((noinline)) static uint32_t k_unemulatable(uint64_t addr)
{
    uint32_t v = 0;
    __asm__ volatile(".globl insn_ud_insn\ninsn_ud_insn: .byte 0xf3, 0x0f, 0xb8, 0x07"
                     : "+a"(v) : "D"(addr) : "memory");
    return v;
}

/* int $0x80, rax=1: write(rdi=buf, rsi=len) to COM1 from ring 0 (cheaper than trapped port I/O);
 * rax=2: rdmsr(rdi) -> rax value, rdx 1 if it faulted (#GP); rax=3: wrmsr(rdi, rsi) -> rax 1 if
 * it faulted */
static void syscall_dispatch(struct isr_frame *f)
{
    if (f->rax == 4) { /* rax=4: k_unemulatable(rdi) -> rax value, rdx 1 if it raised #UD */
        insn_faulted = 0;
        uint32_t v = k_unemulatable(f->rdi);
        f->rax = insn_faulted ? 0 : v;
        f->rdx = (uint64_t)insn_faulted;
        return;
    }
    if (f->rax == 2 || f->rax == 3) {
        msr_faulted = 0;
        if (f->rax == 2) {
            uint64_t v = k_rdmsr((uint32_t)f->rdi);
            f->rax = msr_faulted ? 0 : v;
            f->rdx = (uint64_t)msr_faulted;
        } else {
            k_wrmsr((uint32_t)f->rdi, f->rsi);
            f->rax = (uint64_t)msr_faulted;
        }
        return;
    }
    if (f->rax == 1) {
        const char *s = (const char *)(uintptr_t)f->rdi;
        uint64_t n = f->rsi;
        while (n) {
            for (int i = 0; i < 200000 && !(inb(COM1 + 5) & 0x20); i++) {
            }
            uint64_t chunk = n < 16 ? n : 16;
            for (uint64_t i = 0; i < chunk; i++) outb(COM1, (uint8_t)s[i]);
            s += chunk;
            n -= chunk;
        }
        f->rax = 0;
    } else {
        f->rax = (uint64_t)-1;
    }
}

void isr_dispatch(struct isr_frame *f)
{
    unsigned vec = (unsigned)f->vec & 0xff;
    if (vec == 13 && (f->cs & 3) == 3 && f->err == 0 && emulate_user_io(f)) return;
    if (vec == VEC_SYSCALL) return syscall_dispatch(f);
    if (vec == 13 && (f->cs & 3) == 0 && (f->rip == (uintptr_t)msr_rd_insn || f->rip == (uintptr_t)msr_wr_insn)) {
        msr_faulted = 1;
        f->rip += 2; /* rdmsr / wrmsr: 0f 32 / 0f 30 */
        return;
    }
    if (vec == 6 && (f->cs & 3) == 0 && f->rip == (uintptr_t)insn_ud_insn) {
        insn_faulted = 1;
        f->rip += 4;
        return;
    }
    /* PVM delivers a ring-3 "int $0x80" as #UD (or #GP) in front of the instruction */
    if ((vec == 6 || vec == 13) && (f->cs & 3) == 3) {
        const uint8_t *ip = (const uint8_t *)(uintptr_t)f->rip;
        if (ip[0] == 0xcd && ip[1] == VEC_SYSCALL) {
            f->rip += 2;
            return syscall_dispatch(f);
        }
    }
    /* the debugger test's deliberate ud2 (tests/debug.c): counted and stepped over */
    if (vec == 6 && f->rip == (uintptr_t)dbg_ud2) {
        dbg_faults++;
        f->rip += 2;
        return;
    }
    if (vec < 32) {
        /* a CPU exception is a guest bug or a VMM bug: report and stop with STATUS_CRASH */
        uint64_t cr2;
        __asm__ volatile("mov %%cr2, %0" : "=r"(cr2));
        k_puts("\nFAULT vec=");
        k_hex(vec);
        k_puts(" err=");
        k_hex(f->err);
        k_puts(" rip=");
        k_hex(f->rip);
        k_puts(" cr2=");
        k_hex(cr2);
        k_puts(" cs=");
        k_hex(f->cs);
        k_puts("\nEXIT 2\n");
        outl(EXIT_PORT, STATUS_CRASH);
        for (;;) __asm__ volatile("cli; hlt");
    }
    irq_count[vec]++;
    if (irq_handlers[vec]) irq_handlers[vec](vec);
    switch (irq_eoi[vec]) {
    case EOI_LAPIC: mmio_write32(lapic_base + LAPIC_EOI, 0); break;
    case EOI_PIC_SLAVE: outb(0xa0, 0x20); /* fall through */
    case EOI_PIC_MASTER: outb(0x20, 0x20); break;
    default: break;
    }
}

volatile uint32_t dbg_faults;
volatile uint32_t ap_started;
volatile uint32_t ap_apic_ids[MAX_CPUS];

void ap_main(uint32_t slot)
{
    __asm__ volatile("lidt %0" ::"m"(idt_desc));
    ap_apic_ids[slot] = mmio_read32(lapic_base + LAPIC_ID) >> 24;
    __atomic_fetch_add(&ap_started, 1, __ATOMIC_SEQ_CST);
    for (;;) __asm__ volatile("cli; hlt");
}
