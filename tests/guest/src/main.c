/* qvm test guest: ring-3 main. Parses the PVH command line, runs the selected tests, reports.
 *
 *   tests=a,b,c | all     tests to run (registry order; "all" = every non-terminal test)
 *   bench=x,y | all       benchmarks to run after the tests
 *   cpus=N mem=SIZE ...   expectations used by individual tests (see each test file)
 */
#include "guest.h"

extern const struct guest_test __guest_tests_start[], __guest_tests_end[];
extern const char *current_test;
extern bool any_failed;

static bool selected(const char *list, const struct guest_test *t)
{
    if (!list) return false;
    if (list_contains(list, t->name)) return true;
    return t->kind != TEST_TERMINAL && list_contains(list, "all");
}

static bool known(const char *name, size_t len)
{
    if (len == 3 && !strncmp(name, "all", 3)) return true;
    for (const struct guest_test *t = __guest_tests_start; t < __guest_tests_end; t++)
        if (strlen(t->name) == len && !strncmp(t->name, name, len)) return true;
    return false;
}

static void report_unknown(const char *list)
{
    for (const char *p = list; p && *p && *p != ' ';) {
        const char *e = p;
        while (*e && *e != ' ' && *e != ',') e++;
        if (e > p && !known(p, (size_t)(e - p))) {
            char name[40];
            size_t l = (size_t)(e - p) < sizeof name - 1 ? (size_t)(e - p) : sizeof name - 1;
            memcpy(name, p, l);
            name[l] = 0;
            current_test = name;
            test_fail("unknown test or benchmark name");
        }
        p = *e == ',' ? e + 1 : e;
    }
}

static void lapic_enable(void)
{
    lapic_write(LAPIC_TPR, 0);
    lapic_write(LAPIC_SVR, 0x100 | VEC_SPURIOUS);
    lapic_write(LAPIC_LVT_TIMER, 1u << 16);
    lapic_write(LAPIC_LVT_LINT0, 1u << 16);
    lapic_write(LAPIC_LVT_ERR, 1u << 16);
}

void user_main(void)
{
    serial_init();
    printk("\nqvm-test-guest starting\n");
    const struct hvm_start_info *si = start_info();
    if (!si) {
        printk("no PVH start info (EBX=%x)\n", pvh_start_info);
        guest_exit(STATUS_BADCMD);
    }
    time_init();
    pic_init();
    madt_parse(NULL);
    lapic_enable();
    irq_set_handler(VEC_SPURIOUS, NULL, EOI_NONE);
    irq_enable();
    printk("INFO tsc_khz=%lu source=%s lapic=%lx ioapic=%lx cmdline=\"%s\"\n", tsc_khz, tsc_source,
           lapic_base, ioapic_base,
           si->cmdline_paddr ? (const char *)(uintptr_t)si->cmdline_paddr : "");

    const char *tests = cmdline_get("tests");
    const char *bench = cmdline_get("bench");
    if (!tests && !bench) {
        printk("no tests= or bench= on the command line\n");
        guest_exit(STATUS_BADCMD);
    }
    report_unknown(tests);
    report_unknown(bench);

    for (const struct guest_test *t = __guest_tests_start; t < __guest_tests_end; t++) {
        if (t->kind != TEST_NORMAL || !selected(tests, t)) continue;
        current_test = t->name;
        t->fn();
    }
    for (const struct guest_test *t = __guest_tests_start; t < __guest_tests_end; t++) {
        if (t->kind != TEST_BENCH || !selected(bench, t)) continue;
        current_test = t->name;
        t->fn();
    }
    /* a terminal test (reset, power-off) ends the VM itself; it only runs if all else passed */
    for (const struct guest_test *t = __guest_tests_start; t < __guest_tests_end; t++) {
        if (t->kind != TEST_TERMINAL || !selected(tests, t)) continue;
        if (any_failed) break;
        current_test = t->name;
        t->fn(); /* returns only on failure */
        break;
    }
    guest_exit(any_failed ? STATUS_FAIL : STATUS_PASS);
}
