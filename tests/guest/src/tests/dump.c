/* Guest dumps (qvm: spec §3.13, §8.5), driven by tests/system/dump.py:
 *   dump_wait  dump_outer -> dump_middle -> dump_inner (noinline, no tail calls); the innermost
 *              prints "INFO dump_wait ready" and spins in ring 3 (TSC only: no I/O, no calls, so a
 *              dump taken meanwhile has its rip in dump_inner) for dump_wait_ms (default 20000,
 *              at most 60000), then passes, reporting the longest stretch it did not run (the
 *              host's dump pauses every vCPU). The host sends SIGUSR2 on the marker and opens
 *              the core with `gdb qvm-test-guest.elf CORE`: rip in dump_inner, the backtrace
 *              through dump_middle and dump_outer. Not in any kit group (nothing to check without
 *              a host that dumps). */
#include "guest.h"

static volatile uint64_t dump_sink;

__attribute__((noinline, noclone)) static uint64_t dump_inner(uint64_t ms)
{
    printk("INFO dump_wait ready: spinning in dump_inner for %lu ms\n", ms);
    const uint64_t ticks = ms * tsc_khz;
    uint64_t t0 = rdtsc(), last = t0, gap = 0, n = 0;
    for (;;) {
        uint64_t t = rdtsc();
        if (t - last > gap) gap = t - last;
        last = t;
        n++;
        if (t - t0 >= ticks) break;
        cpu_relax();
    }
    dump_sink = n;
    return gap;
}

__attribute__((noinline, noclone)) static uint64_t dump_middle(uint64_t ms)
{
    uint64_t gap = dump_inner(ms);
    dump_sink += 1; /* work after the call: no tail call, dump_middle keeps its frame */
    return gap;
}

__attribute__((noinline, noclone)) static uint64_t dump_outer(uint64_t ms)
{
    uint64_t gap = dump_middle(ms);
    dump_sink += 2;
    return gap;
}

static void test_dump_wait(void)
{
    uint64_t ms = 20000;
    cmdline_u64("dump_wait_ms", &ms);
    if (ms > 60000) ms = 60000;
    if (!tsc_khz) return test_fail("no TSC frequency");
    uint64_t gap = dump_outer(ms);
    test_pass("spun %lu ms in dump_inner; longest stretch without running %lu ms", ms, gap / tsc_khz);
}
GUEST_TEST(dump_wait, test_dump_wait, TEST_NORMAL,
           "nested functions, the innermost spins: the host dumps the guest meanwhile (qvm)");
