#!/usr/bin/env python3
"""A disk image another process has locked (here a POSIX record lock, as another VMM or tool
would hold) is refused by qvm's virtio-blk with exit 64 and a message naming it; `lock warn` opens
it with a warning and `lock off` silently (docs/virtio.md, "Image locking").
  usage: image_lock.py QVM"""
import fcntl
import os
import subprocess
import sys
import tempfile


def run(qvm, img, extra):
    args = [qvm, "ram", "0,0xa0000", "ram", "1m,63m", "vdev", "virtio-blk", "hostdev", img] + extra
    p = subprocess.run(args + ["dryrun"], capture_output=True, text=True, timeout=30)
    return p.returncode, p.stdout + p.stderr


def main():
    qvm = sys.argv[1]
    failed = []
    with tempfile.TemporaryDirectory() as d:
        img = os.path.join(d, "disk.img")
        with open(img, "wb") as f:
            f.truncate(1 << 20)
        rc, out = run(qvm, img, [])
        if rc != 0:
            failed.append("unlocked image: exit %d\n%s" % (rc, out))
        with open(img, "r+b") as holder:
            fcntl.lockf(holder, fcntl.LOCK_EX)
            rc, out = run(qvm, img, [])
            if rc != 64 or "is in use" not in out or img not in out:
                failed.append("locked image: expected exit 64 naming it, got %d\n%s" % (rc, out))
            rc, out = run(qvm, img, ["lock", "warn"])
            if rc != 0 or "opened anyway" not in out:
                failed.append("lock warn: expected exit 0 with a warning, got %d\n%s" % (rc, out))
            rc, out = run(qvm, img, ["lock", "off"])
            if rc != 0 or "in use" in out:
                failed.append("lock off: expected exit 0 without a word, got %d\n%s" % (rc, out))
    if failed:
        print("FAIL: " + "\n".join(failed))
        return 1
    print("PASS: a locked image is refused (64), lock warn warns, lock off opens it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
