/* Ring-3 micro-benchmarks (bench=...), each printing "BENCH <name> <value> <unit>".
 *   pio   round trip of a port read (COM1 scratch register, handled by the VMM's UART)
 *   mmio  round trip of a 32-bit MMIO read at bench_mmio=ADDR (a user-space device register,
 *         e.g. microvm virtio-mmio magic 0xfeb00000, q35 HPET 0xfed00000); skipped with a
 *         BENCH line value 0 if not given
 *   lapic round trip of a LAPIC register read (in-kernel LAPIC on KVM) */
#include "guest.h"

#define BENCH_ITERS 2000

static uint64_t ns_per(uint64_t cycles, unsigned n) { return cycles * 1000000 / tsc_khz / n; }

static void bench_pio(void)
{
    outb(COM1 + 7, 0x42);
    uint64_t t0 = rdtsc();
    for (unsigned i = 0; i < BENCH_ITERS; i++) (void)inb(COM1 + 7);
    bench_report("pio_read_ring3", ns_per(rdtsc() - t0, BENCH_ITERS), "ns");
}
GUEST_TEST(pio, bench_pio, TEST_BENCH, "port-I/O read round trip");

static void bench_mmio(void)
{
    uint64_t a;
    if (!cmdline_u64("bench_mmio", &a) || a >= 0x100000000ull) {
        printk("INFO bench mmio: no bench_mmio=ADDR given\n");
        return;
    }
    uint64_t t0 = rdtsc();
    for (unsigned i = 0; i < BENCH_ITERS; i++) (void)mmio_read32(a);
    bench_report("mmio_read_ring3", ns_per(rdtsc() - t0, BENCH_ITERS), "ns");
}
GUEST_TEST(mmio, bench_mmio, TEST_BENCH, "MMIO read round trip to bench_mmio=ADDR");

static void bench_lapic(void)
{
    uint64_t t0 = rdtsc();
    for (unsigned i = 0; i < BENCH_ITERS; i++) (void)lapic_read(LAPIC_VER);
    bench_report("lapic_read_ring3", ns_per(rdtsc() - t0, BENCH_ITERS), "ns");
}
GUEST_TEST(lapic, bench_lapic, TEST_BENCH, "LAPIC register read round trip");
