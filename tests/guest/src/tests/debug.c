/* A guest for a debugger (qvm `set gdb`, QEMU -gdb): tests/system/gdb.py drives Debian's gdb
 * against it under both VMMs. The guest waits (up to 60 s) for the debugger to set dbg_go, then
 * calls dbg_mid -> dbg_leaf three times (breakpoints, a backtrace, a watchpoint on dbg_counter),
 * executes a ud2 at dbg_ud2 that the kit's #UD handler steps over (single-stepping it must stop
 * at the handler's first instruction: isr_stubs + 16 * 6), then spins in dbg_spin until the
 * debugger interrupts it and sets dbg_go to 2. It passes with counter=12 faults=1.
 *   gdb_target  (terminal: runs alone, only when named; it waits for a debugger) */
#include "guest.h"

volatile uint32_t dbg_go;
volatile uint64_t dbg_counter;
volatile uint64_t dbg_spins;

__attribute__((noinline)) void dbg_leaf(uint64_t n)
{
    dbg_counter += n;
    __asm__ volatile("" ::: "memory");
}

__attribute__((noinline)) void dbg_mid(uint64_t n)
{
    dbg_leaf(n * 2);
    __asm__ volatile("" ::: "memory");
}

__attribute__((noinline)) static bool dbg_spin(void)
{
    uint64_t t0 = now_us();
    while (dbg_go != 2 && now_us() - t0 < 60000000) dbg_spins++;
    return dbg_go == 2;
}

static void test_gdb_target(void)
{
    printk("DBG waiting for the debugger (dbg_go)\n");
    uint64_t t0 = now_us();
    while (!dbg_go && now_us() - t0 < 60000000) cpu_relax();
    if (!dbg_go) return test_fail("no debugger set dbg_go within 60 s");
    for (uint64_t i = 1; i <= 3; i++) dbg_mid(i);
    __asm__ volatile(".globl dbg_ud2\ndbg_ud2: ud2" ::: "memory");
    printk("DBG spinning (interrupt me, set dbg_go=2)\n");
    if (!dbg_spin()) return test_fail("dbg_go was not set to 2 within 60 s");
    if (dbg_counter != 12 || dbg_faults != 1)
        return test_fail("counter=%lu faults=%u (expected 12 and 1)", (unsigned long)dbg_counter,
                         dbg_faults);
    test_pass("counter=%lu faults=%u spins=%lu", (unsigned long)dbg_counter, dbg_faults,
              (unsigned long)dbg_spins);
}
GUEST_TEST(gdb_target, test_gdb_target, TEST_TERMINAL,
           "a debugger target: breakpoints, watchpoint, a faulting step (tests/system/gdb.py)");
