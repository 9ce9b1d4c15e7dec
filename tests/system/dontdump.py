#!/usr/bin/env python3
"""Guest memory stays out of qvm's core dumps (docs/security.md): a running qvm's guest RAM
mappings (a halting guest with 0-640 KiB and 1-129 MiB of RAM) must carry the kernel's `dd`
(VM_DONTDUMP) flag in /proc/PID/smaps. Fails on a qvm that maps guest memory without
MADV_DONTDUMP.

usage: dontdump.py --qvm QVM
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time


def guest_mappings(pid, kib):
    """(size KiB, VmFlags) of each mapping of exactly `kib` KiB (the guest RAM region; an
    ASan build has large mappings of its own)."""
    out, size = [], 0
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            if line.startswith("Size:"):
                size = int(line.split()[1])
            elif line.startswith("VmFlags:") and size == kib:
                out.append((size, line.split()[1:]))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--qvm", required=True)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        img = os.path.join(d, "halt.bin")
        with open(img, "wb") as f:
            f.write(b"\xf4\xeb\xfd")  # hlt; jmp back (32-bit raw entry, IF=0)
        proc = subprocess.Popen([a.qvm, "system", "dumptest", "ram", "0,0xa0000", "ram", "1m,128m",
                                 "cpu", "load", "0x100000," + img],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        try:
            time.sleep(1.0)
            if proc.poll() is not None:
                print("FAIL: qvm ended (exit %s): %s" % (proc.returncode, proc.stderr.read().decode()))
                return 1
            maps = guest_mappings(proc.pid, 128 * 1024)
        finally:
            proc.kill()
            proc.wait()
    if not maps:
        print("FAIL: no mapping of 128 MiB in qvm (where is guest RAM?)")
        return 1
    bad = [m for m in maps if "dd" not in m[1]]
    if bad:
        print("FAIL: guest RAM mapped without VM_DONTDUMP: " +
              "; ".join("%d KiB flags %s" % (s, " ".join(fl)) for s, fl in bad))
        return 1
    print("PASS: %d guest RAM mapping(s) of 128 MiB carry dd (not in core dumps)" % len(maps))
    return 0


if __name__ == "__main__":
    sys.exit(main())
