#!/usr/bin/env python3
"""Signals sent to a running qvm (docs/exit-codes.md, spec §8.1): a guest that halts forever
(raw image `hlt; jmp .-1`, interrupts off) runs while the test sends, one at a time, SIGHUP and
SIGTERM (the ACPI power button: this guest ignores it, so qvm keeps running), SIGALRM (ignored),
SIGUSR1 (a status report in the log) and SIGPIPE (ignored); qvm must still be running after each.
Then SIGQUIT must end it with exit 3 within 5 s. Any of them ending qvm by its default action
(a dead qvm and a raw terminal) fails the test.

Then a guest that writes its serial port in a loop (`out 0x3f8` forever) into a pipe nobody
reads: the UART's output must not block the vCPU (docs/vm-core.md, "Platform vdevs"), so SIGUSR1
reports the dropped bytes and SIGQUIT ends qvm with 3 within 5 s.

usage: signals.py --qvm QVM
"""
import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time


def quit_within(proc, seconds, hint):
    """SIGQUIT (spec §8.1 power cut) must end qvm with 3 within `seconds`; returns the problems."""
    proc.send_signal(signal.SIGQUIT)
    try:
        rc = proc.wait(timeout=seconds)
        return [] if rc == 3 else ["exit %s after SIGQUIT (expected 3)" % rc]
    except subprocess.TimeoutExpired:
        return ["still running %d s after SIGQUIT%s" % (seconds, hint)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--qvm", required=True)
    a = ap.parse_args()
    failed = []
    with tempfile.TemporaryDirectory() as d:
        img = os.path.join(d, "halt.bin")
        with open(img, "wb") as f:
            f.write(b"\xf4\xeb\xfd")  # hlt; jmp back to the hlt (32-bit raw entry, IF=0)
        log = open(os.path.join(d, "qvm.log"), "w+")
        proc = subprocess.Popen([a.qvm, "system", "sigtest", "ram", "0,0xa0000", "ram", "1m,15m",
                                 "cpu", "load", "0x100000," + img],
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        try:
            time.sleep(1.0)
            if proc.poll() is not None:
                failed.append("qvm ended before any signal (exit %s)" % proc.returncode)
            for sig in (signal.SIGHUP, signal.SIGTERM, signal.SIGALRM, signal.SIGUSR1, signal.SIGPIPE):
                if failed:
                    break
                proc.send_signal(sig)
                time.sleep(0.5)
                if proc.poll() is not None:
                    failed.append("%s ended qvm (exit %s)" % (sig.name, proc.returncode))
            if not failed:
                failed += quit_within(proc, 5, "")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        log.seek(0)
        text = log.read()
    if not failed and "status of VM 'sigtest'" not in text:
        failed.append("no status report after SIGUSR1")
    if not failed and "SIGHUP: pressing the ACPI power button" not in text:
        failed.append("SIGHUP was not taken as the power button")
    if failed:
        print("FAIL: " + "; ".join(failed))
        print(text[-3000:])
        return 1
    print("PASS: SIGHUP, SIGTERM, SIGALRM, SIGUSR1, SIGPIPE survived; SIGQUIT ended qvm with 3")
    return early(a.qvm) or flood(a.qvm)


def rss_kib(pid):
    """VmRSS of `pid` in KiB (/proc/PID/status), or 0."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return 0
    return 0


def early(qvm):
    """Signals sent while qvm is still starting wait for the run loop instead of ending qvm. They
    are sent while qvm reads a 256 MiB `load` image into guest memory (its RSS passed 128 MiB, so
    main() runs: before it the kernel and the loader own the process, not qvm). A qvm that blocks
    them only in its run loop is killed by the first one."""
    with tempfile.TemporaryDirectory() as d:
        img = os.path.join(d, "big.bin")
        with open(img, "wb") as f:
            f.write(b"\xf4\xeb\xfd")  # hlt; jmp back (IF=0)
            f.truncate(256 << 20)
        proc = subprocess.Popen([qvm, "system", "early", "ram", "0,0xa0000", "ram", "1m,300m", "cpu",
                                 "load", "0x100000," + img],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        failed = []
        try:
            t0 = time.monotonic()
            while time.monotonic() - t0 < 5.0 and proc.poll() is None and rss_kib(proc.pid) < 131072:
                time.sleep(0.001)
            for sig in (signal.SIGUSR1, signal.SIGHUP, signal.SIGALRM):
                proc.send_signal(sig)
            time.sleep(1.5)
            if proc.poll() is not None:
                failed.append("a signal during start-up ended qvm (exit %s)" % proc.returncode)
            else:
                failed += quit_within(proc, 5, "")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    if failed:
        print("FAIL: early: " + "; ".join(failed))
        return 1
    print("PASS: early: SIGUSR1, SIGHUP, SIGALRM during start-up waited; SIGQUIT ended qvm with 3")
    return 0


def flood(qvm):
    """A guest flooding COM1 into an undrained pipe still stops on SIGQUIT."""
    with tempfile.TemporaryDirectory() as d:
        img = os.path.join(d, "flood.bin")
        with open(img, "wb") as f:
            # mov dx,0x3f8; mov al,'x'; out dx,al; jmp back to the out (32-bit raw entry)
            f.write(b"\x66\xba\xf8\x03\xb0\x78\xee\xeb\xfd")
        log = open(os.path.join(d, "qvm.log"), "w+")
        r, w = os.pipe()  # qvm's stdout: never read
        proc = subprocess.Popen([qvm, "system", "flood", "ram", "0,0xa0000", "ram", "1m,15m", "cpu",
                                 "load", "0x100000," + img, "vdev", "ioapic", "loc", "0xfec00000",
                                 "intr", "apic", "name", "myioapic", "vdev", "ser8250", "loc",
                                 "0x3f8", "intr", "myioapic:4", "hostdev", "-"],
                                stdin=subprocess.DEVNULL, stdout=w, stderr=log)
        os.close(w)
        failed = []
        try:
            time.sleep(3.0)  # a 64 KiB pipe fills in well under a second
            if proc.poll() is not None:
                failed.append("qvm ended early (exit %s)" % proc.returncode)
            else:
                proc.send_signal(signal.SIGUSR1)
                time.sleep(0.5)
                t0 = time.monotonic()
                failed += quit_within(proc, 5, " (a vCPU blocked in its serial write?)")
                print("flood: SIGQUIT to exit %.2f s" % (time.monotonic() - t0))
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            os.close(r)
        log.seek(0)
        text = log.read()
    m = re.search(r"output: (\d+) bytes waiting for the host, (\d+) dropped", text)
    if not failed and (not m or int(m.group(2)) == 0):
        failed.append("the status report shows no dropped serial output")
    if failed:
        print("FAIL: flood: " + "; ".join(failed))
        print(text[-2000:])
        return 1
    print("PASS: flood: %s bytes dropped, SIGQUIT ended qvm with 3" % m.group(2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
