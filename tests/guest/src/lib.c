/* qvm test guest: freestanding library (string, printf, COM1 console, results, time, cmdline). */
#include "guest.h"

/* ---- string ----------------------------------------------------------------------------- */
void *memset(void *d, int c, size_t n)
{
    unsigned char *p = d;
    while (n--) *p++ = (unsigned char)c;
    return d;
}
void *memcpy(void *d, const void *s, size_t n)
{
    unsigned char *p = d;
    const unsigned char *q = s;
    while (n--) *p++ = *q++;
    return d;
}
int memcmp(const void *a, const void *b, size_t n)
{
    const unsigned char *p = a, *q = b;
    for (; n; n--, p++, q++)
        if (*p != *q) return *p - *q;
    return 0;
}
size_t strlen(const char *s)
{
    size_t n = 0;
    while (s[n]) n++;
    return n;
}
int strcmp(const char *a, const char *b)
{
    while (*a && *a == *b) a++, b++;
    return (unsigned char)*a - (unsigned char)*b;
}
int strncmp(const char *a, const char *b, size_t n)
{
    for (; n; n--, a++, b++) {
        if (*a != *b) return (unsigned char)*a - (unsigned char)*b;
        if (!*a) return 0;
    }
    return 0;
}

/* ---- printf subset: %[0][width][l|ll|z]{d,u,x,c,s,p,%} ---------------------------------- */
struct obuf {
    char *buf;
    size_t size, len;
};
static void ob_put(struct obuf *o, char c)
{
    if (o->len + 1 < o->size) o->buf[o->len] = c;
    o->len++;
}
int vsnprintf(char *buf, size_t size, const char *fmt, va_list ap)
{
    struct obuf o = {buf, size, 0};
    for (; *fmt; fmt++) {
        if (*fmt != '%') {
            ob_put(&o, *fmt);
            continue;
        }
        fmt++;
        char pad = ' ';
        int width = 0, lng = 0;
        if (*fmt == '0') pad = '0', fmt++;
        while (*fmt >= '0' && *fmt <= '9') width = width * 10 + (*fmt++ - '0');
        while (*fmt == 'l' || *fmt == 'z') lng++, fmt++;
        char tmp[24];
        int n = 0;
        const char *s = tmp;
        switch (*fmt) {
        case 'd': {
            int64_t v = lng ? va_arg(ap, int64_t) : va_arg(ap, int);
            uint64_t u = v < 0 ? (uint64_t)(-(v + 1)) + 1 : (uint64_t)v;
            do tmp[n++] = (char)('0' + u % 10), u /= 10; while (u);
            if (v < 0) tmp[n++] = '-';
            goto rev;
        }
        case 'u':
        case 'x':
        case 'p': {
            uint64_t u = (*fmt == 'p' || lng) ? va_arg(ap, uint64_t) : va_arg(ap, unsigned);
            unsigned b = *fmt == 'u' ? 10 : 16;
            if (*fmt == 'p') ob_put(&o, '0'), ob_put(&o, 'x');
            do tmp[n++] = "0123456789abcdef"[u % b], u /= b; while (u);
        rev:
            for (int i = n; i < width; i++) ob_put(&o, pad);
            while (n) ob_put(&o, tmp[--n]);
            continue;
        }
        case 'c': tmp[0] = (char)va_arg(ap, int), tmp[1] = 0; break;
        case 's': s = va_arg(ap, const char *); if (!s) s = "(null)"; break;
        case '%': tmp[0] = '%', tmp[1] = 0; break;
        default: tmp[0] = '?', tmp[1] = 0; break;
        }
        int l = (int)strlen(s);
        for (int i = l; i < width; i++) ob_put(&o, pad);
        while (*s) ob_put(&o, *s++);
        if (!*fmt) break;
    }
    if (size) buf[o.len < size ? o.len : size - 1] = 0;
    return (int)o.len;
}
int snprintf(char *buf, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = vsnprintf(buf, size, fmt, ap);
    va_end(ap);
    return r;
}

/* ---- COM1 ------------------------------------------------------------------------------- */
void serial_init(void)
{
    outb(COM1 + 1, 0x00); /* IER: no interrupts */
    outb(COM1 + 3, 0x80); /* DLAB */
    outb(COM1 + 0, 0x01); /* 115200 */
    outb(COM1 + 1, 0x00);
    outb(COM1 + 3, 0x03); /* 8N1 */
    outb(COM1 + 2, 0x07); /* FIFO on, clear, trigger 1 byte */
    outb(COM1 + 4, 0x0b); /* DTR RTS OUT2 */
}

/* Console output goes through int $0x80 (a ring-0 loop) unless console=pio is given: on PVM hosts
 * each ring-3 port access traps, so one syscall per line is much cheaper. */
static bool use_syscall_write = true;
void serial_use_pio(bool on) { use_syscall_write = !on; }

/* THRE set means the 16-byte FIFO is empty: write up to 16 bytes per LSR poll (fewer exits). */
void serial_write(const char *s, size_t n)
{
    if (use_syscall_write) {
        uint64_t rax = 1;
        __asm__ volatile("int $0x80" : "+a"(rax) : "D"(s), "S"(n) : "memory");
        return;
    }
    while (n) {
        for (int i = 0; i < 200000 && !(inb(COM1 + 5) & 0x20); i++) cpu_relax();
        size_t chunk = n < 16 ? n : 16;
        for (size_t i = 0; i < chunk; i++) outb(COM1, (uint8_t)s[i]);
        s += chunk;
        n -= chunk;
    }
}

void printk(const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1;
    /* truncated: keep the line structure the runner parses */
    if ((size_t)n >= sizeof buf && fmt[0] && fmt[strlen(fmt) - 1] == '\n') buf[len - 1] = '\n';
    serial_write(buf, len);
}

const char *current_test = "?";
bool any_failed;
static void report(const char *verdict, const char *fmt, va_list ap)
{
    char detail[320];
    vsnprintf(detail, sizeof detail, fmt, ap);
    for (char *p = detail; *p; p++)
        if (*p == '\n' || *p == '\r') *p = ' ';
    printk("TEST %s %s %s\n", current_test, verdict, detail);
}
void test_pass(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    report("PASS", fmt, ap);
    va_end(ap);
}
void test_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    any_failed = true;
    report("FAIL", fmt, ap);
    va_end(ap);
}
void test_pending(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    report("PENDING", fmt, ap);
    va_end(ap);
}
void bench_report(const char *name, uint64_t value, const char *unit)
{
    printk("BENCH %s %lu %s\n", name, value, unit);
}

void guest_exit(uint32_t status)
{
    printk("EXIT %u\n", status);
    outl(EXIT_PORT, status);
    /* no exit device (or it ignored us): spin; the runner's timeout reports it */
    for (;;) cpu_relax();
}

/* ---- time ------------------------------------------------------------------------------- */
uint64_t tsc_khz = 2000000;
const char *tsc_source = "assumed";

uint64_t now_us(void) { return rdtsc() * 1000 / tsc_khz; }
void udelay(uint64_t us)
{
    uint64_t end = rdtsc() + us * tsc_khz / 1000;
    while (rdtsc() < end) cpu_relax();
}

/* TSC frequency: hypervisor CPUID leaf 0x40000010 (EAX = TSC kHz) if offered, else measured
 * against PIT channel 0 counter read-back (mode 2, divisor 65536, latch command) over 50 ms.
 * Channel 0's interrupt is masked everywhere at this point. */
static uint16_t pit0_count(void)
{
    outb(0x43, 0x00); /* latch channel 0 */
    uint8_t lo = inb(0x40), hi = inb(0x40);
    return (uint16_t)(lo | (hi << 8));
}

void time_init(void)
{
    uint32_t r[4];
    cpuid(0x40000000, 0, r);
    if (r[0] >= 0x40000010) {
        cpuid(0x40000010, 0, r);
        if (r[0] > 100000 && r[0] < 10000000) {
            tsc_khz = r[0];
            tsc_source = "cpuid";
            return;
        }
    }
    const uint64_t want = 1193182 / 20; /* 50 ms of PIT ticks */
    outb(0x43, 0x34);
    outb(0x40, 0);
    outb(0x40, 0);
    uint16_t prev = pit0_count();
    uint64_t t0 = rdtsc(), t1 = t0, ticks = 0;
    for (unsigned i = 0; i < 100000 && ticks < want; i++) {
        uint16_t c = pit0_count();
        t1 = rdtsc();
        ticks += (uint16_t)(prev - c);
        prev = c;
    }
    pit_stop();
    if (ticks >= want && t1 > t0) {
        uint64_t khz = (t1 - t0) * 1193182 / ticks / 1000;
        if (khz > 100000 && khz < 10000000) {
            tsc_khz = khz;
            tsc_source = "pit";
        }
    }
}

/* ---- command line ----------------------------------------------------------------------- */
static const char *cmdline_str(void)
{
    const struct hvm_start_info *si = start_info();
    if (!si || !si->cmdline_paddr || si->cmdline_paddr >= 0xffffffffull) return "";
    return (const char *)(uintptr_t)si->cmdline_paddr;
}

const char *cmdline_get(const char *key)
{
    const char *s = cmdline_str();
    size_t kl = strlen(key);
    for (size_t guard = 0; *s && guard < 4096; guard++) {
        while (*s == ' ') s++;
        if (!strncmp(s, key, kl) && s[kl] == '=') return s + kl + 1;
        while (*s && *s != ' ') s++;
    }
    return NULL;
}

bool cmdline_u64(const char *key, uint64_t *out)
{
    const char *v = cmdline_get(key);
    if (!v || !*v || *v == ' ') return false;
    uint64_t x = 0, base = 10;
    if (v[0] == '0' && (v[1] == 'x' || v[1] == 'X')) base = 16, v += 2;
    for (; *v && *v != ' ' && *v != ','; v++) {
        unsigned d;
        if (*v >= '0' && *v <= '9') d = (unsigned)(*v - '0');
        else if (base == 16 && *v >= 'a' && *v <= 'f') d = (unsigned)(*v - 'a' + 10);
        else if (base == 16 && *v >= 'A' && *v <= 'F') d = (unsigned)(*v - 'A' + 10);
        else if (*v == 'k' || *v == 'K') { x <<= 10; continue; }
        else if (*v == 'm' || *v == 'M') { x <<= 20; continue; }
        else if (*v == 'g' || *v == 'G') { x <<= 30; continue; }
        else return false;
        x = x * base + d;
    }
    *out = x;
    return true;
}

bool list_contains(const char *list, const char *item)
{
    if (!list) return false;
    size_t il = strlen(item);
    const char *p = list;
    while (*p && *p != ' ') {
        const char *e = p;
        while (*e && *e != ' ' && *e != ',') e++;
        size_t l = (size_t)(e - p);
        if (l == il && !strncmp(p, item, il)) return true;
        p = *e == ',' ? e + 1 : e;
    }
    return false;
}

/* Set by multiboot.S before .bss is cleared, so it lives in .data. */
uint32_t mb_info __attribute__((section(".data")));

const struct multiboot_info *multiboot_info(void)
{
    return mb_info ? (const struct multiboot_info *)(uintptr_t)mb_info : NULL;
}

/* The multiboot information as a PVH start info: command line, memory map (entries as the
 * loader gave them, each `size` bytes + 4), modules. Bounded: the loader is not trusted to be
 * sane either. */
#define MB_MAX_MAP 64
#define MB_MAX_MODS 8
static struct hvm_start_info mb_si;
static struct hvm_memmap_entry mb_map[MB_MAX_MAP];
static struct hvm_modlist_entry mb_mods[MB_MAX_MODS];

static const struct hvm_start_info *start_info_from_multiboot(void)
{
    const struct multiboot_info *mi = multiboot_info();
    if (mb_si.magic) return &mb_si;
    mb_si.version = 1;
    if (mi->flags & MB_INFO_CMDLINE) mb_si.cmdline_paddr = mi->cmdline;
    if (mi->flags & MB_INFO_MMAP) {
        uint32_t off = 0, n = 0;
        while (off + 24 <= mi->mmap_length && n < MB_MAX_MAP) {
            const uint8_t *e = (const uint8_t *)(uintptr_t)(mi->mmap_addr + off);
            uint32_t size = *(const uint32_t *)e;
            mb_map[n].addr = *(const uint64_t *)(e + 4);
            mb_map[n].size = *(const uint64_t *)(e + 12);
            mb_map[n].type = *(const uint32_t *)(e + 20);
            n++;
            if (size < 20) break;
            off += size + 4;
        }
        mb_si.memmap_paddr = (uint64_t)(uintptr_t)mb_map;
        mb_si.memmap_entries = n;
    }
    if (mi->flags & MB_INFO_MODS) {
        const struct multiboot_module *m = (const struct multiboot_module *)(uintptr_t)mi->mods_addr;
        uint32_t n = mi->mods_count < MB_MAX_MODS ? mi->mods_count : MB_MAX_MODS;
        for (uint32_t i = 0; i < n; i++) {
            mb_mods[i].paddr = m[i].mod_start;
            mb_mods[i].size = m[i].mod_end - m[i].mod_start;
            mb_mods[i].cmdline_paddr = m[i].string;
        }
        mb_si.nr_modules = n;
        mb_si.modlist_paddr = (uint64_t)(uintptr_t)mb_mods;
    }
    mb_si.magic = HVM_START_MAGIC;
    return &mb_si;
}

const struct hvm_start_info *start_info(void)
{
    if (!pvh_start_info && mb_info) return start_info_from_multiboot();
    const struct hvm_start_info *si = (const struct hvm_start_info *)(uintptr_t)pvh_start_info;
    if (!pvh_start_info || si->magic != HVM_START_MAGIC) return NULL;
    return si;
}

bool serial_getline(char *buf, unsigned *len, unsigned cap)
{
    while (inb(COM1 + 5) & 1) {
        char c = (char)inb(COM1);
        if (c == '\r') continue;
        if (c == '\n') {
            buf[*len] = 0;
            *len = 0;
            return true;
        }
        if (*len + 1 < cap) buf[(*len)++] = c;
    }
    return false;
}
