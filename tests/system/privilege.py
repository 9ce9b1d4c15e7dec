#!/usr/bin/env python3
"""`set user` (docs/security.md, "Least privilege"): qvm started as root opens what needs root,
then runs the VM as an ordinary user with no way back.
  drop        the kit's dump_wait under `set user nobody`: while the guest runs, every uid and gid
              of qvm is nobody's, no capability is left, NoNewPrivs is 1; the guest passes (32)
  unknown     `set user` naming no user on the host: exit 65 with the entry's location (dryrun)
  runtime     with a vdev that uses qvm's runtime directory while the VM runs (shmem): exit 65
  not_root    qvm started as nobody with `set user` naming another user: exit 64, nothing started
Needs root (a FAIL otherwise, never a skip).

usage: privilege.py --qvm QVM --guest GUEST.elf --config KIT.qvmconf
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

NOBODY = 65534


def status_of(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.split()
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--qvm", required=True)
    ap.add_argument("--guest", required=True)
    ap.add_argument("--config", required=True)
    a = ap.parse_args()
    if os.geteuid() != 0:
        print("FAIL: this test needs root (qvm drops from root to nobody)")
        return 1
    env = dict(os.environ, QVM_TEST_GUEST=os.path.abspath(a.guest))
    failed = []

    def result(name, ok, detail):
        print("%s %s: %s" % ("PASS" if ok else "FAIL", name, detail))
        if not ok:
            failed.append(name)

    base = [a.qvm, "@" + a.config]
    p = subprocess.Popen(base + ["set", "user", "nobody", "cmdline",
                                 "tests=dump_wait dump_wait_ms=4000"],
                         env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    seen = None
    for _ in range(40):  # the drop comes once the VM is built: poll its ids
        time.sleep(0.1)
        try:
            st = status_of(p.pid)
        except OSError:
            break
        if st["Uid"][0] == str(NOBODY):
            seen = st
            break
    out, err = p.communicate(timeout=60)
    ok = (seen is not None and seen["Uid"] == [str(NOBODY)] * 4 and seen["Gid"] == [str(NOBODY)] * 4
          and seen["CapEff"] == ["0000000000000000"] and seen.get("NoNewPrivs") == ["1"]
          and p.returncode == 32 and "TEST dump_wait PASS" in out)
    result("drop", ok, "exit %s, ids %s" % (p.returncode, seen and (seen["Uid"], seen["Gid"],
                                                                  seen["CapEff"], seen.get("NoNewPrivs"))))
    if not ok:
        print("  stderr: " + err[-800:].replace("\n", "\n  stderr: "))

    r = subprocess.run(base + ["set", "user", "no-such-user-qvm", "dryrun"], env=env,
                       capture_output=True, text=True, timeout=30)
    result("unknown", r.returncode == 65 and re.search(r":\d+:\d+: set user: no user", r.stderr),
           "exit %d: %s" % (r.returncode, r.stderr.strip()[-200:]))

    r = subprocess.run(base + ["set", "user", "nobody", "vdev", "shmem", "dryrun"], env=env,
                       capture_output=True, text=True, timeout=30)
    result("runtime", r.returncode == 65 and "not with vdev shmem" in r.stderr,
           "exit %d: %s" % (r.returncode, r.stderr.strip()[-200:]))

    def as_nobody():
        os.setgroups([])
        os.setresgid(NOBODY, NOBODY, NOBODY)
        os.setresuid(NOBODY, NOBODY, NOBODY)
    # nobody must reach the binary: a clean clone usually lives in a 0700 directory. A copy in a
    # directory of its own (0755) stands in; the check needs no configuration file.
    pub = tempfile.mkdtemp(prefix="qvm-priv-")
    os.chmod(pub, 0o755)
    pub_qvm = os.path.join(pub, "qvm")
    shutil.copy2(a.qvm, pub_qvm)
    os.chmod(pub_qvm, 0o755)
    r = subprocess.run(base + ["set", "user", "root:0"], env=env, capture_output=True, text=True,
                       timeout=30)
    result("root_refused", r.returncode == 65 and "names root" in r.stderr,
           "exit %d: %s" % (r.returncode, r.stderr.strip()[-200:]))
    try:
        r = subprocess.run([pub_qvm, "ram", "64m", "set", "user", "daemon"], env=env,
                           capture_output=True, text=True, timeout=30, preexec_fn=as_nobody,
                           cwd=pub)
        result("not_root", r.returncode == 64 and "needs root" in r.stderr,
               "exit %d: %s" % (r.returncode, r.stderr.strip()[-200:]))
    finally:
        shutil.rmtree(pub, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
