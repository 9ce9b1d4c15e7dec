#!/usr/bin/env python3
"""L2 Linux under qvm vs under QEMU, both inside the same virtual test host (docs/test-host.md).

Runs the `bench` scenario of tests/host (interleaved rounds: qvm, QEMU, qvm, QEMU, ...; same kernel,
initramfs, disk image and TAP) and prints per metric the median of each VMM and the ratio
qvm/QEMU, oriented so that > 1 means qvm is better (for times: QEMU's time / qvm's time).

usage: bench/host.py --qvm build-release/src/app/qvm [--rounds 3] [--net-mb 32]
"""
import argparse
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
LOWER_IS_BETTER = {"s"}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--qvm", required=True)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--net-mb", type=int, default=32)
    a = ap.parse_args()
    images = subprocess.run([os.path.join(REPO, "tests/host/build-images.sh")], check=True,
                            capture_output=True, text=True).stdout.strip()
    # run.py passes the scenario's knobs through L1's kernel command line only for the repo,
    # qvm, images and scenario; the rest are fixed defaults in l1-scenario.sh unless given here.
    env = dict(os.environ)
    cmd = [sys.executable, os.path.join(REPO, "tests/host/run.py"), "--qvm", a.qvm, "--images", images,
           "--scenario", "bench", "--timeout", str(300 + 240 * a.rounds),
           "--env", "QVMHOST_BENCH_ROUNDS=%d" % a.rounds, "--env", "QVMHOST_BENCH_NET_MB=%d" % a.net_mb]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    values = {}
    units = {}
    for line in out.stdout.splitlines():
        parts = line.split()
        if "HOSTBENCH" not in parts:
            continue
        i = parts.index("HOSTBENCH")
        try:
            vmm, _, metric, value, unit = parts[i + 1:i + 6]
            values.setdefault(metric, {}).setdefault(vmm, []).append(float(value))
            units[metric] = unit
        except ValueError:
            continue
    if out.returncode != 0 or not values:
        print(out.stdout[-4000:])
        print("bench/host.py: the bench scenario failed", file=sys.stderr)
        return 1
    print("%-14s %10s %10s %8s  (medians of %d rounds, L2 inside one TCG L1)" % ("metric", "qvm", "QEMU", "ratio", a.rounds))
    for metric, per in values.items():
        q, r = statistics.median(per.get("qvm", [0])), statistics.median(per.get("qemu", [0]))
        unit = units[metric]
        if unit in LOWER_IS_BETTER:
            ratio = r / q if q else 0
        else:
            ratio = q / r if r else 0
        print("%-14s %8.2f %-3s %8.2f %-3s %6.2fx" % (metric, q, unit[:3], r, unit[:3], ratio))
    return 0


if __name__ == "__main__":
    sys.exit(main())
