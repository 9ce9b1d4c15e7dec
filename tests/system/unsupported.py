#!/usr/bin/env python3
"""`unsupported instruction` (spec §3.14, docs/config-language.md): the kit's insn_unsupported test
runs popcnt on an unassigned memory-mapped address from ring 0, which KVM's emulator gives up on.
  fail (the default)  the guest gets #UD and the test passes (qvm exits 32: the kit's PASS), with a
                      log line naming the rip
  ignore              the same, and the configuration warns at its file:line:col that it acts as
                      'fail'
  abort               qvm ends with exit 5, naming the instruction's rip
(The kit's `insn` group runs the default case under the runner as well.)

usage: unsupported.py --qvm QVM --guest GUEST.elf --config KIT.qvmconf
"""
import argparse
import os
import re
import subprocess
import sys


def run(qvm, guest, config, action):
    argv = [qvm, "@" + config]
    if action:
        argv += ["unsupported", "instruction", action]
    argv += ["cmdline", "tests=insn_unsupported"]
    env = dict(os.environ, QVM_TEST_GUEST=guest)
    p = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=60)
    return p.returncode, p.stdout, p.stderr


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--qvm", required=True)
    ap.add_argument("--guest", required=True)
    ap.add_argument("--config", required=True)
    a = ap.parse_args()
    failed = []
    rip = re.compile(r"at rip 0x[0-9a-f]+")
    for action in (None, "ignore", "abort"):
        name = action or "default (fail)"
        rc, out, err = run(a.qvm, a.guest, a.config, action)
        if action == "abort":
            ok = rc == 5 and rip.search(err) and "unsupported instruction abort" in err \
                and "TEST insn_unsupported" not in out
        else:
            ok = rc == 32 and "TEST insn_unsupported PASS" in out and rip.search(err) \
                and "#UD raised in the guest" in err
            if action == "ignore":
                ok = ok and re.search(r":\d+:\d+: warning: unsupported instruction ignore acts as "
                                      r"'fail'", err)
        print("%s %s: exit %d" % ("PASS" if ok else "FAIL", name, rc))
        if not ok:
            failed.append(name)
            print("  stdout: " + out[-600:].replace("\n", "\n  stdout: "))
            print("  stderr: " + err[-600:].replace("\n", "\n  stderr: "))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
