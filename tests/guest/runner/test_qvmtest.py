#!/usr/bin/env python3
"""Unit tests of the guest-kit runner: broken expectations must fail.

Pure cases feed evaluate() fabricated console output; the live cases boot the real guest under
QEMU microvm with a deliberately wrong expectation (QVM_TEST_GUEST = path of the guest ELF; if it
or QEMU/KVM is missing the live cases FAIL, they do not skip)."""

import os
import unittest

import qvmtest

GOOD = """
qvm-test-guest starting
TEST acpi PASS rsdp=f0000 cpus=1
TEST e820 PASS ram=130687 KiB
EXIT 0
"""


def dataclasses_replace(obj, **kw):
    import dataclasses
    return dataclasses.replace(obj, **kw)


class EvaluateTests(unittest.TestCase):
    def test_watchdog_expiry_needs_the_vmms_watchdog_exit(self):
        out = "TEST wdt_expire PENDING arming\n"
        ok, _, problems, _ = qvmtest.evaluate(out, ["wdt_expire"], "watchdog", None)
        self.assertTrue(ok, problems)
        ok, _, _, _ = qvmtest.evaluate(out, ["wdt_expire"], "shutdown", None)
        self.assertFalse(ok)  # qvm must end with 4, not as a guest shutdown
        ok, _, _, _ = qvmtest.evaluate(out, ["wdt_expire"], "shutdown", None,
                                       watchdog_kinds=("shutdown",))
        self.assertTrue(ok)  # QEMU: -action watchdog=poweroff

    def test_all_pass(self):
        ok, results, problems, _ = qvmtest.evaluate(GOOD, ["acpi", "e820"], "status", 0)
        self.assertTrue(ok, problems)
        self.assertEqual([r.verdict for r in results], ["PASS", "PASS"])

    def test_fail_line_fails(self):
        out = GOOD.replace("TEST e820 PASS", "TEST e820 FAIL")
        ok, results, _, _ = qvmtest.evaluate(out, ["acpi", "e820"], "status", 1)
        self.assertFalse(ok)
        self.assertEqual(results[1].verdict, "FAIL")

    def test_fail_line_fails_even_with_pass_status(self):
        out = GOOD.replace("TEST e820 PASS", "TEST e820 FAIL")
        ok, _, _, _ = qvmtest.evaluate(out, ["acpi", "e820"], "status", 0)
        self.assertFalse(ok)

    def test_missing_test_fails(self):
        ok, results, _, _ = qvmtest.evaluate(GOOD, ["acpi", "e820", "smp"], "status", 0)
        self.assertFalse(ok)
        self.assertEqual(results[2].verdict, "MISSING")

    def test_wrong_exit_status_fails(self):
        for kind, value in (("status", 1), ("status", 2), ("shutdown", None), ("error", -9)):
            ok, _, problems, _ = qvmtest.evaluate(GOOD, ["acpi", "e820"], kind, value)
            self.assertFalse(ok, (kind, value))
            self.assertTrue(problems)

    def test_timeout_fails(self):
        ok, _, problems, _ = qvmtest.evaluate(GOOD, ["acpi", "e820"], "error", -9, timed_out=True)
        self.assertFalse(ok)
        self.assertIn("timeout: VMM killed", problems)

    def test_unexpected_fail_fails(self):
        out = GOOD + "TEST bogus FAIL unknown test or benchmark name\n"
        ok, _, _, _ = qvmtest.evaluate(out, ["acpi", "e820"], "status", 0)
        self.assertFalse(ok)

    def test_guest_fault_fails(self):
        out = GOOD + "FAULT vec=0xd err=0 rip=0x101000\n"
        ok, _, _, _ = qvmtest.evaluate(out, ["acpi", "e820"], "status", 0)
        self.assertFalse(ok)

    def test_terminal_needs_shutdown_exit(self):
        out = "TEST poweroff PENDING S5\n"
        ok, _, _, _ = qvmtest.evaluate(out, ["poweroff"], "shutdown", None)
        self.assertTrue(ok)
        ok, _, _, _ = qvmtest.evaluate(out, ["poweroff"], "status", 0)
        self.assertFalse(ok)
        ok, _, _, _ = qvmtest.evaluate(out, ["poweroff"], "shutdown", None, timed_out=True)
        self.assertFalse(ok)
        ok, _, _, _ = qvmtest.evaluate(out + "TEST poweroff FAIL still running\n", ["poweroff"], "status", 1)
        self.assertFalse(ok)

    def test_kill_test_needs_runner_sigkill(self):
        out = "TEST virtio_blk_durable PENDING rw dsector=1 dcount=2 dfnv=00000000 flushed\n"
        ok, _, _, _ = qvmtest.evaluate(out, ["virtio_blk_durable"], "killed", -9)
        self.assertTrue(ok)
        for kind, value in (("status", 0), ("shutdown", None), ("error", -9)):
            ok, _, _, _ = qvmtest.evaluate(out, ["virtio_blk_durable"], kind, value)
            self.assertFalse(ok, kind)
        ok, _, _, _ = qvmtest.evaluate(out, ["virtio_blk_durable"], "killed", -9, timed_out=True)
        self.assertFalse(ok)
        ok, _, _, _ = qvmtest.evaluate(out + "TEST virtio_blk_durable FAIL not killed\n",
                                       ["virtio_blk_durable"], "status", 1)
        self.assertFalse(ok)

    def test_durable_bytes_match_guest_formula(self):
        seed, sec = 123456789, 77
        want = bytes((sec * 167 + i * 13 + seed * 101 + (seed >> 8) + (i >> 6) + 0x3c) & 0xff for i in range(512))
        self.assertEqual(qvmtest.durable_bytes(seed, sec, 1), want)

    def test_bench_lines_parsed(self):
        _, _, _, bench = qvmtest.evaluate("BENCH pio_read_ring3 1234 ns\n", [], "status", 0)
        self.assertEqual(bench["pio_read_ring3"], (1234.0, "ns"))

    def test_exit_decoding(self):
        q = qvmtest.MACHINES["qemu-microvm"]
        self.assertEqual(q.decode_exit(1), ("status", 0))
        self.assertEqual(q.decode_exit(3), ("status", 1))
        self.assertEqual(q.decode_exit(0), ("shutdown", None))
        self.assertEqual(q.decode_exit(2)[0], "error")
        v = qvmtest.MACHINES["qvm"]
        self.assertEqual(v.decode_exit(32), ("status", 0))
        self.assertEqual(v.decode_exit(33), ("status", 1))
        self.assertEqual(v.decode_exit(0), ("shutdown", None))
        self.assertEqual(v.decode_exit(65)[0], "error")
        self.assertEqual(v.decode_exit(1)[0], "error")

    def test_missing_vmm_fails_not_skips(self):
        opts = qvmtest.RunOptions(vmm="qemu-microvm", guest=__file__, tests=["acpi"],
                                  qemu="/nonexistent/qemu-system-x86_64")
        res = qvmtest.run(opts)
        self.assertFalse(res.ok)
        self.assertTrue(any("not found" in p for p in res.problems))

    def test_qvm_argv_uses_config_and_cmdline(self):
        opts = qvmtest.RunOptions(vmm="qvm", guest="g.elf", tests=["serial"], qvm="/x/qvm")
        m = qvmtest.MACHINES["qvm"]
        argv = m.argv(opts, "tests=serial")
        self.assertEqual(argv[0], "/x/qvm")
        self.assertTrue(argv[1].startswith("@") and argv[1].endswith("kit.qvmconf"))
        self.assertEqual(argv[2:], ["cmdline", "tests=serial"])
        self.assertTrue(os.path.isfile(argv[1][1:]))


class VirtioRunnerTests(unittest.TestCase):
    def test_pattern_matches_reference_formula(self):
        data = qvmtest.pattern_bytes(600)
        for s in (0, 1, 255, 256, 599):
            self.assertEqual(data[s * 512:(s + 1) * 512], qvmtest.pattern_sector(s))

    def test_fnv1a32(self):
        self.assertEqual(qvmtest.fnv1a32(b""), 0x811c9dc5)
        self.assertEqual(qvmtest.fnv1a32(b"a"), 0xe40c292c)

    def test_device_set_decides(self):
        qvm = qvmtest.MACHINES["qvm"]
        self.assertTrue(qvm.offers("virtio_entropy", "virtio_legacy"))
        self.assertFalse(qvm.offers("virtio_blk", "virtio_legacy"))
        self.assertFalse(qvm.offers("virtio_entropy", None))
        micro = qvmtest.MACHINES["qemu-microvm"]
        for t in qvmtest.GROUPS["virtio"]["tests"]:
            self.assertTrue(micro.offers(t, "virtio"), t)
        opts = qvmtest.RunOptions(vmm="qvm", guest=__file__, tests=["virtio_blk"], qvm="/bin/true",
                                  devices="virtio_legacy")
        errs = qvmtest.preflight(qvm, opts)
        self.assertTrue(any("virtio_blk" in e for e in errs), errs)
        # virtio-pci: q35 and qvm offer the whole group (INTx included)
        q35 = qvmtest.MACHINES["qemu-q35"]
        for t in qvmtest.GROUPS["virtio_pci"]["tests"]:
            self.assertTrue(q35.offers(t, "virtio_pci"), t)
            self.assertTrue(qvm.offers(t, "virtio_pci"), t)
        self.assertFalse(micro.offers("virtio_pci", None))

    def test_q35_virtio_pci_argv_is_modern_only(self):
        q35 = qvmtest.MACHINES["qemu-q35"]
        opts = qvmtest.RunOptions(vmm="qemu-q35", guest="g.elf", tests=["virtio_pci"], devices="virtio_pci")
        host = qvmtest.VirtioHost(q35.device_sets["virtio_pci"])
        try:
            argv = q35.argv(opts, "tests=virtio_pci", host)
        finally:
            host.close()
        pci = [a for a in argv if a.startswith("virtio-") and "-pci" in a]
        self.assertEqual(len(pci), 4, argv)
        for a in pci:
            self.assertIn("disable-legacy=on,disable-modern=off", a)
        self.assertTrue(any(host.disk in a for a in argv))
        cfg = qvmtest.MACHINES["qvm"].config(dataclasses_replace(opts, vmm="qvm"))
        self.assertTrue(cfg.endswith("kit-virtio-pci.qvmconf"), cfg)
        self.assertTrue(os.path.isfile(cfg), cfg)

    def test_rate_device_sets_agree_on_the_rate(self):
        # vrate= (what the guest holds the device to) = QEMU's max-bytes per 1000 ms = qvm's `rate`
        want = f"vrate={qvmtest.VRATE}"
        for vmm, group in (("qemu-microvm", "virtio_rate"), ("qemu-q35", "virtio_pci_rate")):
            ds = qvmtest.MACHINES[vmm].device_sets[group]
            self.assertIn(want, ds.cmdline)
            rng = [a for a in ds.qemu_args if a.startswith("virtio-rng-")]
            self.assertEqual(len(rng), 1, ds.qemu_args)
            self.assertIn(f"max-bytes={qvmtest.VRATE},period=1000", rng[0])
            for t in qvmtest.GROUPS[group]["tests"]:
                self.assertTrue(qvmtest.MACHINES[vmm].offers(t, group), t)
        qvm = qvmtest.MACHINES["qvm"]
        for group in ("virtio_rate", "virtio_pci_rate"):
            ds = qvm.device_sets[group]
            self.assertIn(want, ds.cmdline)
            for t in qvmtest.GROUPS[group]["tests"]:
                self.assertTrue(qvm.offers(t, group), t)
            with open(os.path.join(qvmtest.CONFIGS, ds.qvm_config)) as f:
                ent = [ln.split() for ln in f if ln.startswith("vdev virtio-entropy")]
            self.assertEqual(len(ent), 2)   # one on virtio-mmio (loc), one on PCI
            self.assertEqual(sorted("loc" in e for e in ent), [False, True])
            for e in ent:
                self.assertEqual(e[e.index("rate") + 1], str(qvmtest.VRATE), e)

    def test_host_check_catches_wrong_disk_contents(self):
        host = qvmtest.VirtioHost(qvmtest.QEMU_MICROVM_DEVSETS["virtio"])
        try:
            ws = host.wsector
            good = qvmtest.fnv1a32(qvmtest.write_sector(host.seed))
            # the guest claims a write the file does not hold
            r = qvmtest.TestResult("virtio_blk", "PASS", f"rw x wsector={ws} wfnv={good:08x}; ro")
            host.check([r])
            self.assertEqual(r.verdict, "FAIL")
            self.assertIn("FNV", r.detail)
            # now the file holds it
            with open(host.disk, "r+b") as f:
                f.seek(ws * 512)
                f.write(qvmtest.write_sector(host.seed))
            r = qvmtest.TestResult("virtio_blk", "PASS", f"rw x wsector={ws} wfnv={good:08x}; ro")
            host.check([r])
            self.assertEqual(r.verdict, "PASS", r.detail)
            # a stray write elsewhere
            with open(host.disk, "r+b") as f:
                f.seek((ws + 1) * 512)
                f.write(b"\0")
            r = qvmtest.TestResult("virtio_blk", "PASS", f"rw x wsector={ws} wfnv={good:08x}; ro")
            host.check([r])
            self.assertEqual(r.verdict, "FAIL")
            # console: nothing arrived on the backend
            r = qvmtest.TestResult("virtio_console", "PASS", "tx=22")
            host.check([r])
            self.assertEqual(r.verdict, "FAIL")
        finally:
            host.close()


GUEST = os.environ.get("QVM_TEST_GUEST", "")


class LiveBrokenExpectationTests(unittest.TestCase):
    """The guest itself must catch a wrong expectation and the runner must report it."""

    def run_guest(self, tests, **expect):
        self.assertTrue(GUEST and os.path.isfile(GUEST), "set QVM_TEST_GUEST to the built guest ELF")
        opts = qvmtest.RunOptions(vmm="qemu-microvm", guest=GUEST, tests=tests, expect=expect, timeout=30)
        return qvmtest.run(opts)

    def test_correct_expectation_passes(self):
        res = self.run_guest(["acpi", "e820"])
        self.assertTrue(res.ok, res.problems + [r.detail for r in res.tests] + [res.output])

    def test_wrong_cpu_count_fails(self):
        res = self.run_guest(["acpi"], cpus="3")
        self.assertFalse(res.ok)
        self.assertEqual(res.tests[0].verdict, "FAIL")
        self.assertIn("expected cpus=3", res.tests[0].detail)
        self.assertEqual((res.exit_kind, res.exit_value), ("status", 1))

    def test_wrong_memory_size_fails(self):
        res = self.run_guest(["e820"], mem="256M")
        self.assertFalse(res.ok)
        self.assertEqual(res.tests[0].verdict, "FAIL")

    def test_missing_device_reported(self):
        # microvm has no PCI: asking for the pci test there must not pass
        res = self.run_guest(["pci"])
        self.assertFalse(res.ok)

    def run_virtio(self, **expect):
        self.assertTrue(GUEST and os.path.isfile(GUEST), "set QVM_TEST_GUEST to the built guest ELF")
        opts = qvmtest.RunOptions(vmm="qemu-microvm", guest=GUEST, tests=qvmtest.GROUPS["virtio"]["tests"],
                                  expect=expect, timeout=30, devices="virtio")
        res = qvmtest.run(opts)
        return res, {r.name: r for r in res.tests}

    def test_virtio_correct_expectations_pass(self):
        res, _ = self.run_virtio()
        self.assertTrue(res.ok, res.problems + [r.detail for r in res.tests] + [res.output])

    def test_virtio_wrong_expectations_fail(self):
        res, t = self.run_virtio(vmmio="5", vblk_sectors="1000", ventropy="2")
        self.assertFalse(res.ok)
        self.assertIn("expected vmmio=5", t["virtio_mmio"].detail)
        self.assertIn("vblk_sectors=1000", t["virtio_blk"].detail)
        self.assertEqual(t["virtio_entropy"].verdict, "FAIL")
        self.assertEqual(t["virtio_console"].verdict, "PASS")

    def test_virtio_host_checks_catch_guest_claims(self):
        # the guest writes another sector / prints another nonce than the runner's: the guest
        # itself passes, the host-side checks must not
        # sector 200: the runner picks its sector from 1..199 (VirtioHost), so the guest's write
        # never lands by chance on the sector the host checks (7 did, once in 199 runs)
        res, t = self.run_virtio(vblk_wsector="200", vcon_nonce="bogus")
        self.assertFalse(res.ok)
        self.assertEqual(t["virtio_blk"].verdict, "FAIL", t["virtio_blk"].detail)
        self.assertIn("host check", t["virtio_blk"].detail)
        self.assertEqual(t["virtio_console"].verdict, "FAIL", t["virtio_console"].detail)
        self.assertIn("console backend did not receive", t["virtio_console"].detail)
        mp = t["virtio_console_multiport"]
        self.assertEqual(mp.verdict, "FAIL", mp.detail)
        self.assertIn("port 1 backend did not receive", mp.detail)


if __name__ == "__main__":
    unittest.main()
