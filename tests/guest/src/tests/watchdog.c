/* The IB700 watchdog (qvm vdev wdt-ib700, QEMU -device ib700): a write to port 0x441 stops it, a
 * write of N to 0x443 (re)arms it with a timeout of table[N & 15] seconds (30, 28, ..., 2, 0).
 *   wdt_kick    armed with 2 s and kicked every 250 ms for 3 s (longer than the timeout), then
 *               stopped; the VM must still run 3 s later
 *   wdt_expire  (terminal) armed with 2 s and never kicked: the VMM's watchdog action must end the
 *               VM (qvm: exit code 4; QEMU with -action watchdog=poweroff: a power-off), not
 *               sooner than ~2 s; if the VM still runs after 10 s the test fails */
#include "guest.h"

#define WDT_STOP 0x441
#define WDT_START 0x443
#define WDT_2S 14

static void test_wdt_kick(void)
{
    outb(WDT_START, WDT_2S);
    uint64_t t0 = now_us();
    unsigned kicks = 0;
    while (now_us() - t0 < 3000000) {
        udelay(250000);
        outb(WDT_START, WDT_2S);
        kicks++;
    }
    outb(WDT_STOP, 0);
    udelay(3000000); /* stopped: 3 s without a kick is fine */
    test_pass("%u kicks over 3 s with a 2 s timeout, then stopped; still running", kicks);
}
GUEST_TEST(wdt_kick, test_wdt_kick, TEST_NORMAL, "IB700 watchdog kicked: the VM runs on");

static void test_wdt_expire(void)
{
    outb(WDT_STOP, 0);
    test_pending("arming the IB700 with 2 s and not kicking it");
    uint64_t t0 = now_us();
    outb(WDT_START, WDT_2S);
    while (now_us() - t0 < 10000000) cpu_relax();
    test_fail("the watchdog did not end the VM within 10 s of a 2 s timeout");
}
GUEST_TEST(wdt_expire, test_wdt_expire, TEST_TERMINAL, "IB700 watchdog not kicked: the VMM's action");
