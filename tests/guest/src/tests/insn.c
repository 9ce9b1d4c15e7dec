/* Instructions KVM's emulator cannot run (spec §3.14 `unsupported instruction`), from ring 0:
 *   insn_unsupported  popcnt with a memory operand at an unassigned address (insn_addr, default
 *                     0xd0000000): the access exits to KVM, whose emulator has no popcnt and hands
 *                     the instruction to qvm. With `unsupported instruction fail` (the default)
 *                     and `ignore` the guest gets #UD at the instruction; with `abort` qvm ends
 *                     with exit 5 (tests/system/unsupported.py). qvm only: QEMU stops the VM on
 *                     an emulation failure. */
#include "guest.h"

static void test_insn_unsupported(void)
{
    uint64_t addr = 0xd0000000;
    cmdline_u64("insn_addr", &addr);
    bool ud;
    uint32_t v = insn_unemulatable(addr, &ud);
    if (!ud) return test_fail("popcnt on MMIO %lx ran (value %u): expected #UD", addr, v);
    test_pass("popcnt on MMIO %lx raised #UD", addr);
}
GUEST_TEST(insn_unsupported, test_insn_unsupported, TEST_NORMAL,
           "an instruction KVM cannot emulate: #UD ('unsupported instruction fail')");
