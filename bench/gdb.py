#!/usr/bin/env python3
"""What the GDB stub costs (docs/debugging.md, docs/performance.md). Two measurements, rounds
interleaved, medians printed with ratios; not a pass/fail test.

  idle   the test kit's exit round-trip benches (bench=pio,mmio,lapic: ring-3 port-I/O, MMIO and LAPIC reads
         that leave the guest every time) under qvm with `set gdb tcp:...` and no client attached
         vs without `set gdb`: the stub must cost the vCPUs nothing until a client attaches
         (ratio ~1.00; the vCPU gate's fast path is one atomic load per exit).
  step   single steps per second through the remote protocol (`vCont;s:1` then the stop reply,
         over loopback TCP), qvm's stub vs QEMU's -gdb (-enable-kvm), both started paused at the
         kit's PVH entry (ring 0: on a kvm_pvm host the only place a step traps).

  bench/gdb.py --qvm build-release/src/app/qvm --guest build-release/tests/guest/qvm-test-guest.elf [-n 5] [--steps 2000]
"""
import argparse
import os
import re
import socket
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
KIT_CONF = os.path.join(ROOT, "tests", "guest", "configs", "kit.qvmconf")
BENCH_CONF = os.path.join(HERE, "kit-bench.qvmconf")  # + virtio-entropy at 0xfeb00000 for MMIO
sys.path.insert(0, os.path.join(ROOT, "tests", "system"))
from gdb import Rsp  # noqa: E402  (tests/system/gdb.py's protocol client)

BENCH_RE = re.compile(r"BENCH (\S+) (\d+) (\S+)")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def idle_round(a, with_gdb):
    argv = [a.qvm, "@" + BENCH_CONF]
    if with_gdb:
        argv += ["set", "gdb", "tcp:127.0.0.1:%d" % free_port()]
    argv += ["cmdline", "bench=pio,mmio,lapic bench_mmio=0xfeb00000"]
    out = subprocess.run(argv, env=dict(os.environ, QVM_TEST_GUEST=a.guest), capture_output=True,
                         text=True, timeout=120).stdout
    return {m.group(1): int(m.group(2)) for m in BENCH_RE.finditer(out)}


def step_round(a, vmm, steps):
    port = free_port()
    env = dict(os.environ, QVM_TEST_GUEST=a.guest)
    if vmm == "qvm":
        argv = [a.qvm, "@" + KIT_CONF, "set", "gdb", "tcp:127.0.0.1:%d,paused" % port,
                "cmdline", "tests=gdb_target"]
    else:
        argv = [a.qemu, "-M", "microvm", "-enable-kvm", "-nodefaults", "-no-user-config",
                "-display", "none", "-serial", "stdio", "-m", "128M", "-kernel", a.guest,
                "-append", "tests=gdb_target", "-gdb", "tcp:127.0.0.1:%d" % port, "-S"]
    p = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
    try:
        if vmm == "qvm":
            for line in p.stderr:
                if "GDB stub listening" in line:
                    break
        else:
            time.sleep(1.0)
        c = Rsp(port)
        c.ask("?")
        step = "vCont;s:1" if vmm == "qvm" else "s"
        t0 = time.perf_counter()
        for _ in range(steps):
            r = c.ask(step)
            if not r.startswith("T"):
                raise RuntimeError("%s: step -> %s" % (vmm, r))
        rate = steps / (time.perf_counter() - t0)
        c.send("k")
        c.close()
        return rate
    finally:
        p.kill()
        p.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--qvm", required=True)
    ap.add_argument("--qemu", default="qemu-system-x86_64")
    ap.add_argument("--guest", required=True)
    ap.add_argument("-n", type=int, default=5)
    ap.add_argument("--steps", type=int, default=2000)
    a = ap.parse_args()
    idle = {False: {}, True: {}}
    rates = {"qvm": [], "qemu": []}
    for _ in range(a.n):
        for g in (False, True):
            for k, v in idle_round(a, g).items():
                idle[g].setdefault(k, []).append(v)
        for vmm in ("qvm", "qemu"):
            rates[vmm].append(step_round(a, vmm, a.steps))
    print("GDB stub, %d rounds interleaved (medians)" % a.n)
    print("%-22s %12s %16s %8s" % ("idle: exit round trip", "no set gdb", "gdb, no client", "ratio"))
    for k in sorted(idle[False]):
        x, y = statistics.median(idle[False][k]), statistics.median(idle[True].get(k, [0]))
        print("%-22s %9d ns %13d ns %8.3f" % (k, x, y, y / x if x else 0))
    q, e = statistics.median(rates["qvm"]), statistics.median(rates["qemu"])
    print("%-22s %12s %16s %8s" % ("step: steps/s", "qvm", "QEMU -enable-kvm", "qvm/QEMU"))
    print("%-22s %12.0f %16.0f %8.2f" % ("vCont;s / s", q, e, q / e if e else 0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
