#!/usr/bin/env python3
"""Runs one scenario of the virtual test host (docs/testing.md, layer 1).

Boots L1 -- Debian's standard kernel under QEMU in software emulation (`-accel tcg -cpu max`, which
emulates AMD SVM, so L1 gets a real kvm_amd, /dev/vhost-net, tun, bridge) -- with the host's root
shared read-only over 9p. L1 runs tests/host/l1-scenario.sh SCENARIO from this tree in a chroot
over that share, which starts the given qvm binary (with its shared libraries, as built) on L2
Linux guests and prints `HOSTTEST check PASS|FAIL detail` lines on L1's serial console.

The test passes when the scenario ends (HOSTDONE), every check passed and at least one ran. On a
failure it prints the tail of L1's console (which includes the L2 console and qvm log tails).
An L1 that prints nothing at all for --silence seconds has hung in the emulator, and an L1 whose
QEMU exits before the scenario ends has reset or triple-faulted in it (docs/test-host.md, "Which
QEMU"); those two cases are retried once in a new L1, with the console's tail printed first.

usage: run.py --qvm QVM --images DIR --scenario NAME [--timeout S] [--smp N] [--env QVMHOST_X=V ...]
"""
import argparse
import os
import select
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--qvm", required=True)
    ap.add_argument("--images", required=True, help="folder printed by build-images.sh")
    ap.add_argument("--scenario", required=True)
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--smp", type=int, default=2)
    ap.add_argument("--mem", default="2G")
    ap.add_argument("--silence", type=int, default=220,
                    help="seconds without any L1 output that count as an emulator hang (retried once)")
    ap.add_argument("--thp", choices=("madvise", "never", "always"), default="never",
                    help="L1's transparent huge pages (qvm asks for them on guest RAM with "
                         "MADV_HUGEPAGE); off by default while the emulated stack still faults "
                         "(docs/test-host.md, \"Which QEMU\")")
    ap.add_argument("--tcg-thread", choices=("multi", "single"), default="multi",
                    help="QEMU TCG threading for L1; single is the fallback for a QEMU whose "
                         "multi-threaded TCG hangs L1 (docs/test-host.md, \"Which QEMU\")")
    ap.add_argument("--env", action="append", default=[], metavar="QVMHOST_X=V",
                    help="a knob for the scenario (l1-scenario.sh); no spaces or commas")
    a = ap.parse_args()
    qemu = shutil.which("qemu-system-x86_64")
    if not qemu:
        print("FAIL: qemu-system-x86_64 missing (scripts/install-deps.sh installs qemu-system-x86)")
        return 1
    qvm = os.path.abspath(a.qvm)
    images = os.path.abspath(a.images)
    for f in (qvm, images + "/vmlinuz", images + "/vmlinux", images + "/l1.cpio.gz", images + "/l2.cpio.gz"):
        if not os.path.exists(f):
            print("FAIL: %s missing (tests/host/build-images.sh builds the images)" % f)
            return 1
    append = ("console=ttyS0 quiet qvmhost.repo=%s qvmhost.qvm=%s qvmhost.scenario=%s qvmhost.images=%s"
              " qvmhost.thp=%s" % (REPO, qvm, a.scenario, os.path.realpath(images), a.thp))
    for e in a.env:
        if not e.startswith("QVMHOST_") or "=" not in e or any(c in e for c in " ,"):
            print("FAIL: --env %r: want QVMHOST_NAME=VALUE without spaces or commas" % e)
            return 1
    if a.env:
        append += " qvmhost.env=" + ",".join(a.env)
    cmd = [qemu, "-accel", "tcg,thread=" + a.tcg_thread, "-cpu", "max", "-M", "pc", "-m", a.mem, "-smp", str(a.smp),
           "-display", "none", "-serial", "stdio", "-monitor", "none", "-no-reboot",
           "-kernel", images + "/vmlinuz", "-initrd", images + "/l1.cpio.gz", "-append", append,
           "-virtfs", "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap"]
    start = time.monotonic()
    for attempt in (1, 2):
        res = run_l1(cmd, start + a.timeout, a.silence, start)
        # Two faults of the emulator are retried once, in a new L1 (docs/test-host.md, "Which
        # QEMU"): total silence of L1 for --silence seconds (longer than any scenario step, whose
        # qvm runs are killed after at most 200 s: the emulator hanging, not qvm, since a hung or
        # crashed qvm is killed and reported by the scenario), and an L1 that ended before its
        # scenario did (its QEMU exited: with -no-reboot an L1 reset or triple fault; no process
        # in L1 can do that, and a scenario that ends early says "L1: scenario ended" first).
        # A failed check is never retried.
        l1_ended = res["why"] == "eof" and not any(l.startswith("L1: scenario ended")
                                                   for l in res["lines"])
        if res["why"] not in ("silent", "eof") or (res["why"] == "eof" and not l1_ended) \
                or res["failed"] or attempt == 2:
            break
        if res["why"] == "silent":
            print("L1 printed nothing for %d s (QEMU TCG hang, not a check result); console tail:"
                  % a.silence, flush=True)
        else:
            print("L1 ended before its scenario (L1's QEMU %s; an emulator fault, not a check "
                  "result); console tail:" % qemu_status(res["rc"]), flush=True)
        for line in res["lines"][-30:]:
            print("  L1| " + line)
        print("retrying the scenario once in a new L1", flush=True)
    elapsed = time.monotonic() - start
    passed, failed, lines = res["passed"], res["failed"], res["lines"]
    # The L1 knobs must have taken effect: L1's init reports its THP mode.
    up = [l for l in lines if l.startswith("L1: up")]
    if up and ("thp=%s" % a.thp) not in up[0]:
        print("FAIL: L1 did not take --thp %s: %s" % (a.thp, up[0]))
        return 1
    ok = res["why"] == "" and failed == 0 and passed > 0
    if not ok:
        why = ("timed out after %.0f s" % a.timeout if res["why"] == "timeout" else
               "L1 printed nothing for %d s" % a.silence if res["why"] == "silent" else
               "the scenario did not finish (L1's QEMU %s)" % qemu_status(res["rc"]) if res["why"] == "eof" else
               "no check ran" if passed == 0 else "%d check(s) failed" % failed)
        print("FAIL: scenario %s: %s; L1 console tail:" % (a.scenario, why))
        for line in lines[-80:]:
            print("  L1| " + line)
        return 1
    print("PASS: scenario %s: %d checks in %.1f s" % (a.scenario, passed, elapsed))
    return 0


def run_l1(cmd, deadline, silence, t0):
    """One L1 boot; why = "" (HOSTDONE seen), "timeout", "silent" or "eof"."""
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    res = {"lines": [], "passed": 0, "failed": 0, "why": "eof", "rc": None}
    buf = b""
    last = time.monotonic()
    try:
        while True:
            now = time.monotonic()
            if now >= deadline or now - last >= silence:
                if res["why"] != "":  # after HOSTDONE only L1's power-off is left
                    res["why"] = "timeout" if now >= deadline else "silent"
                break
            r, _, _ = select.select([proc.stdout], [], [], min(deadline - now, 5.0))
            if not r:
                continue
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                break
            last = time.monotonic()
            buf += chunk
            *complete, buf = buf.split(b"\n")
            for raw in complete:
                line = raw.decode("utf-8", "replace").rstrip("\r")
                res["lines"].append(line)
                if line.startswith(("HOSTTEST ", "HOSTINFO ", "HOSTBENCH ", "HOSTDONE ", "L1:")):
                    print("[%6.1fs] %s" % (time.monotonic() - t0, line), flush=True)
                if line.startswith("HOSTTEST "):
                    if " PASS " in line or line.endswith(" PASS"):
                        res["passed"] += 1
                    else:
                        res["failed"] += 1
                if line.startswith("HOSTDONE "):
                    res["why"] = ""
    finally:
        if proc.poll() is None:
            proc.kill()
        res["rc"] = proc.wait()
    return res


def qemu_status(rc):
    """How L1's QEMU ended: with -no-reboot an L1 triple fault or reset is a clean exit 0."""
    if rc is None:
        return "still running"
    if rc < 0:
        return "died of signal %d" % -rc
    return "exited with %d%s" % (rc, " (L1 reset, triple fault or power-off)" if rc == 0 else "")

if __name__ == "__main__":
    sys.exit(main())
