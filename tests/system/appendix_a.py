#!/usr/bin/env python3
"""The spec's Appendix A configurations run a guest (examples/qnx7-x86_64-guest.qvmconf = A.1,
examples/linux-x86_64-guest.qvmconf = A.2), with the test kit standing in for the QNX IFS and for
the Linux kernel: each example as written, plus the kit's exit port (`vdev testdev loc io:0xf4`)
and a `cmdline` that selects the kit's platform tests (last wins over the example's). Each run
must end with the kit's PASS (exit 32) and every selected test must report PASS. A.2's TAP
(`peer tap:qvmtap0`) is created in a private network namespace (unshare --net) and goes with it;
both examples' shmem regions and peer sockets are qvm's to remove at exit.

usage: appendix_a.py --qvm QVM --guest GUEST.elf --examples DIR
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

TESTS = "serial,pit,rtc,acpi,e820,hpet_counter,smp"
RUNS = [
    # (example, env names -> what stands in, expected RAM in KiB, needs its own netns)
    ("qnx7-x86_64-guest", {"QNX_IFS": "guest", "QNX_DISK": "disk"}, 640 + 1024 * 1024, False),
    ("linux-x86_64-guest", {"LINUX_KERNEL": "guest", "LINUX_INITRD": "disk",
                            "LINUX_DISK": "disk"}, 640 + 1023 * 1024, True),
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--qvm", required=True)
    ap.add_argument("--guest", required=True)
    ap.add_argument("--examples", required=True)
    a = ap.parse_args()
    failed = []
    with tempfile.TemporaryDirectory() as d:
        disk = os.path.join(d, "disk.img")
        with open(disk, "wb") as f:
            f.truncate(1 << 20)
        stand_in = {"guest": os.path.abspath(a.guest), "disk": disk}
        for name, env_map, ram_kib, netns in RUNS:
            env = dict(os.environ)
            env.update({k: stand_in[v] for k, v in env_map.items()})
            argv = [a.qvm, "@" + os.path.join(a.examples, name + ".qvmconf"),
                    "vdev", "testdev", "loc", "io:0xf4",
                    "cmdline", "tests=%s cpus=2 mem=%dk" % (TESTS, ram_kib)]
            if netns:
                if not shutil.which("unshare") or os.geteuid() != 0:
                    print("FAIL %s: needs root and unshare(1) for its TAP device" % name)
                    failed.append(name)
                    continue
                argv = ["unshare", "--net"] + argv
            p = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                               text=True, timeout=90)
            results = dict(re.findall(r"^TEST (\S+) (PASS|FAIL)", p.stdout, re.M))
            want = TESTS.split(",")
            ok = p.returncode == 32 and all(results.get(t) == "PASS" for t in want)
            print("%s %s: exit %d, %s" % ("PASS" if ok else "FAIL", name, p.returncode,
                                          " ".join("%s=%s" % (t, results.get(t, "missing"))
                                                   for t in want)))
            if not ok:
                failed.append(name)
                print("  stdout: " + p.stdout[-1500:].replace("\n", "\n  stdout: "))
                print("  stderr: " + p.stderr[-1500:].replace("\n", "\n  stderr: "))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
