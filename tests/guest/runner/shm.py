#!/usr/bin/env python3
"""Shared memory across processes: two qvm and qvm-shm on one region (Python 3 standard library).

Guest A runs `shmem_client` with the PCI factory, guest B with the memory-mapped one
(configs/kit-shmem.qvmconf), each driven by serial commands; `qvm-shm attach` joins as a third
client (the host side). The scenario, every step checked:
  1. A creates the region (4 pages, client 0); B attaches asking for 8 (gets 4, client 1); A is
     interrupted with both attached
  2. A writes and notifies B by its bit; B is interrupted with A's bit pending and reads A's text;
     B writes and notifies everyone but itself (~0); A reads B's text
  3. qvm-shm attaches (client 2), reads A's text through its own mapping, writes, notifies all;
     both guests are interrupted with bit 2 pending and read it; A notifies qvm-shm's bit and its
     doorbell rings
  4. B's qvm is killed (SIGKILL): A and qvm-shm see client 1 go; B starts again, re-attaches as
     client 1 and reads A's text from before: the region survived
  5. qvm-shm clients fill the region to 16; the 17th gets GSS_CLIENT_MAX, and so does guest B
     after a detach and a new client took its place
  6. everyone leaves: the region file and every socket are gone from the region directory

Isolation: as pair.py, a private runtime directory (root: a mount namespace with it on /run/qvm;
else XDG_RUNTIME_DIR); qvm-shm gets it with --dir.

  shm.py --qvm build/src/app/qvm --qvm-shm build/src/app/qvm-shm --guest build/tests/guest/qvm-test-guest.elf
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from pair import CONFIGS, PairEnv, Vm, log  # noqa: E402

REGION = "kpair"


class Lines:
    """Waits for the next output line matching a pattern (after the last one matched)."""

    vm: Vm
    pos: int = 0

    def expect(self, pattern: str, timeout: float = 10) -> re.Match:
        m, self.pos = self.vm.wait_line(pattern, timeout, self.pos)
        if not m:
            raise AssertionError(f"{self.vm.label}: no line matching {pattern!r}; output:\n{self.vm.text()}")
        return m

    def cmd(self, text: str, pattern: str, timeout: float = 10) -> re.Match:
        self.vm.send(text)
        return self.expect(pattern, timeout)


class ShmTool(Lines):
    """qvm-shm attach NAME: one command per line, one answer line each."""

    def __init__(self, env: ShmEnv, label: str, create: str | None = None):
        argv = [env.qvm_shm, "--dir", env.shm_dir]
        if create:
            argv += ["--create", create]
        argv += ["attach", REGION]
        self.vm = Vm(label, argv, dict(os.environ), env.verbose)
        env.vms.append(self.vm)  # killed by env.close() if still running
        self.pos = 0

    def quit(self) -> None:
        self.vm.send("quit")
        if self.vm.wait(5) is None:
            self.vm.kill()


class ShmEnv(PairEnv):
    def __init__(self, qvm: str, qvm_shm: str, guest: str, verbose: bool):
        super().__init__(qvm, guest, verbose)
        self.qvm_shm = qvm_shm
        self.shm_dir = os.path.join(self.runtime, "shm")

    def config(self, system: str, transport: str) -> str:
        base = open(os.path.join(CONFIGS, "kit-shmem.qvmconf")).read()
        base = re.sub(r"(?m)^system kit-shmem$", f"system {system}", base)
        path = os.path.join(self.dir, f"{system}.qvmconf")
        with open(path, "w") as f:
            f.write(base)
        return path

    def cmdline(self, system: str, tests: str, extra: dict[str, str]) -> str:
        facts = {"tests": tests, "shm_tag": "k"}
        facts.update(extra)
        return " ".join(f"{k}={v}" for k, v in facts.items())


class Guest(Lines):
    def __init__(self, env: ShmEnv, system: str, mmio: bool):
        extra = {"shm_mmio": "0xd0010000", "shm_mmio_gsi": "10"} if mmio else {}
        self.vm = env.start(system, "mmio" if mmio else "pci", "shmem_client", **extra)
        self.pos = 0
        self.expect(r"SHM ready factory=" + ("mmio" if mmio else "pci"), 30)

    def end(self) -> None:
        self.vm.send("end")
        self.expect(r"TEST shmem_client PASS", 10)
        rc = self.vm.wait(10)
        if rc != 32:
            raise AssertionError(f"{self.vm.label}: exit code {rc}, expected 32 (guest PASS)")


def scenario(env: ShmEnv) -> None:
    a = Guest(env, "shmA", mmio=False)
    b = Guest(env, "shmB", mmio=True)
    log("1. A creates, B attaches")
    a.cmd(f"attach {REGION} 4", r"SHM attach status=0 idx=0 pages=4 ")
    b.cmd(f"attach {REGION} 8", r"SHM attach status=0 idx=1 pages=4 ")
    a.cmd("wait 1 5000", r"SHM wait ok irqs=\d+ pending=0 attached=3")
    log("2. data and notifications between the guests")
    a.cmd("write 0 hello-from-A", r"SHM wrote 12")
    a.cmd("notify 2", r"SHM notified 2")
    b.cmd("wait 1 5000", r"SHM wait ok irqs=\d+ pending=1 attached=3")
    b.cmd("read 0", r"SHM read 'hello-from-A\.*'")
    b.cmd("write 4096 hello-from-B", r"SHM wrote 12")
    b.cmd("notify ffffffff", r"SHM notified ffffffff")
    a.cmd("wait 1 5000", r"SHM wait ok irqs=\d+ pending=2 attached=3")
    a.cmd("read 4096", r"SHM read 'hello-from-B\.*'")
    log("3. qvm-shm joins as client 2")
    h = ShmTool(env, "host")
    h.expect(r"attached idx=2 pages=4 attached=0x0007")
    a.cmd("wait 1 5000", r"SHM wait ok irqs=\d+ pending=0 attached=7")
    b.cmd("wait 1 5000", r"SHM wait ok irqs=\d+ pending=0 attached=7")
    h.cmd("read 0 64", r"read 'hello-from-A'")
    h.cmd("write 8192 from-host", r"wrote 9")
    h.cmd("notify all", r"notified 0xffffffff")
    a.cmd("wait 1 5000", r"SHM wait ok irqs=\d+ pending=4 attached=7")
    b.cmd("wait 1 5000", r"SHM wait ok irqs=\d+ pending=4 attached=7")
    a.cmd("read 8192", r"SHM read 'from-host\.*'")
    a.cmd("notify 4", r"SHM notified 4")
    h.cmd("wait 5000", r"rang pending=0x0001 attached=0x0007")
    log("4. B's qvm killed; B restarts and finds the region as it was")
    b.vm.kill()
    a.cmd("wait 1 5000", r"SHM wait ok irqs=\d+ pending=0 attached=5")
    h.cmd("wait 5000", r"rang pending=0x0000 attached=0x0005")
    b = Guest(env, "shmB", mmio=True)
    b.cmd(f"attach {REGION} 1", r"SHM attach status=0 idx=1 pages=4 ")
    b.cmd("read 0", r"SHM read 'hello-from-A\.*'")
    a.cmd("wait 1 5000", r"SHM wait ok irqs=\d+ pending=0 attached=7")
    log("5. sixteen clients, then GSS_CLIENT_MAX for qvm-shm and for a guest")
    extra = [ShmTool(env, f"c{i}") for i in range(13)]
    got = sorted(int(t.expect(r"attached idx=(\d+) ").group(1)) for t in extra)
    if got != list(range(3, 16)):
        raise AssertionError(f"13 more clients got slots {got}, expected 3..15")
    over = ShmTool(env, "c17")
    over.expect(r"error GSS_CLIENT_MAX")
    over.vm.wait(5)
    b.cmd("detach", r"SHM detached")
    refill = ShmTool(env, "c16")
    refill.expect(r"attached idx=1 ")
    b.cmd(f"attach {REGION} 4", r"SHM attach status=3 ")
    log("6. everyone leaves: nothing is left in the region directory")
    for t in extra + [refill, h]:
        t.quit()
    a.end()
    b.end()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and os.listdir(env.shm_dir):
        time.sleep(0.05)
    left = os.listdir(env.shm_dir)
    if left:
        raise AssertionError(f"left in {env.shm_dir}: {left}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--qvm", required=True)
    ap.add_argument("--qvm-shm", required=True)
    ap.add_argument("--guest", required=True)
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()
    for p in (args.qvm, args.qvm_shm, args.guest):
        if not os.path.exists(p):
            print(f"FAIL: {p} does not exist", flush=True)
            return 1
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        print("FAIL: /dev/kvm is not usable", flush=True)
        return 1
    env = ShmEnv(os.path.abspath(args.qvm), os.path.abspath(args.qvm_shm), os.path.abspath(args.guest),
                 args.verbose)
    t0 = time.monotonic()
    try:
        scenario(env)
    except AssertionError as e:
        print(f"FAIL: {e}", flush=True)
        # qvm's status report (SIGUSR1) of each VM still running: the vdevs' counters
        for vm in env.vms:
            if vm.proc.poll() is None and vm.label.startswith("shm"):
                vm.signal(signal.SIGUSR1)
        time.sleep(0.5)
        for vm in env.vms:
            lines = [l for l in vm.text().splitlines() if "shmem" in l or "window" in l or "factory:" in l]
            if lines:
                print(f"--- {vm.label} status report:\n" + "\n".join(lines[-12:]), flush=True)
        return 1
    finally:
        env.close()
    print(f"PASS: two qvm and qvm-shm on one region ({time.monotonic() - t0:.1f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
