#!/usr/bin/env python3
"""Runs virtual-test-host scenarios many times and tallies runs and failures per variant
(docs/test-host.md, "Failure tally"). Not a test: it measures how often a scenario fails.

Each VARIANT is `NAME=ARGS`: a label and the run.py arguments after --qvm/--images, e.g.
  'peer-tcp=--scenario peer-tcp'
  'net-ioeventfd-off=--scenario net --env QVMHOST_VHOST_MODES=off+ioeventfd_off'
Variants run interleaved (round robin), so a slow drift of the machine hits all of them alike.
Every run's output is kept in --logs; the table at the end gives runs, passes, failures and
the first failure line of each failed run, and how many runs met a fault of the emulated
stack (an L2 triple fault, also one that a repeat then got past, or an L1 that ended early).

usage: tally.py --qvm QVM --images DIR [--runs N] [--logs DIR] VARIANT...
"""
import argparse
import os
import shlex
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
FAULT_MARKS = ("triple fault on vCPU", "L2 triple fault after", "L1's QEMU exited with 0", "L1's QEMU died")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--qvm", required=True)
    ap.add_argument("--images", required=True)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--logs", default="tally-logs")
    ap.add_argument("variants", nargs="+", metavar="NAME=ARGS")
    a = ap.parse_args()
    variants = []
    for v in a.variants:
        name, sep, args = v.partition("=")
        if not sep or not name:
            ap.error("variant %r: want NAME=RUN.PY-ARGS" % v)
        variants.append((name, shlex.split(args)))
    os.makedirs(a.logs, exist_ok=True)
    results = {name: [] for name, _ in variants}
    for i in range(1, a.runs + 1):
        for name, args in variants:
            log = os.path.join(a.logs, "%s.%d.log" % (name, i))
            t0 = time.monotonic()
            with open(log, "w") as out:
                rc = subprocess.call([sys.executable, os.path.join(HERE, "run.py"), "--qvm", a.qvm,
                                      "--images", a.images] + args, stdout=out, stderr=subprocess.STDOUT)
            secs = time.monotonic() - t0
            with open(log, errors="replace") as f:
                text = f.read()
            # A fault of the emulated stack, even in a run that passed after a repeat: an L2
            # triple fault (qvm's log or the scenario's HOSTINFO) or an L1 that ended early.
            fault = any(k in text for k in FAULT_MARKS)
            why = ""
            if rc != 0:
                fails = [l.strip() for l in text.splitlines() if "FAIL" in l]
                why = fails[0] if fails else "exit %d" % rc
            results[name].append((rc == 0, secs, why, log, fault))
            print("%-28s run %d: %s in %.0f s%s %s" % (name, i, "PASS" if rc == 0 else "FAIL", secs,
                                                      " (fault)" if fault else "", why), flush=True)
    print("\n%-28s %5s %5s %5s %6s" % ("variant", "runs", "pass", "fail", "faults"))
    for name, _ in variants:
        r = results[name]
        print("%-28s %5d %5d %5d %6d" % (name, len(r), sum(x[0] for x in r), sum(not x[0] for x in r),
                                        sum(x[4] for x in r)))
        for ok, _, why, log, _ in r:
            if not ok:
                print("    %s: %s" % (os.path.basename(log), why[:160]))
    return 0 if all(ok for r in results.values() for ok, *_ in r) else 1


if __name__ == "__main__":
    sys.exit(main())
