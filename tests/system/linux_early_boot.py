#!/usr/bin/env python3
"""Boots Debian's own kernel under qvm and checks what the *kernel* reports about the machine.

On this fleet's KVM (PVM) guest ring 0 runs in KVM's instruction emulator, so a stock kernel gets
through early boot (e820, ACPI, MADT, SMP enumeration) and then stops on an instruction the
emulator cannot run (docs/testing.md). The test therefore reads the kernel's boot log until
"smpboot: Allowing N CPUs", checks every expected line, and stops qvm with SIGQUIT (exit 3).
On a VMX/SVM host the same lines appear and the kernel goes on booting; the test stops it alike.

usage: linux_early_boot.py --qvm QVM --kernel {vmlinuz|vmlinux} [--cpus N] [--timeout S]
"""
import argparse
import os
import re
import select
import signal
import subprocess
import sys
import tempfile
import time

CMDLINE = "console=ttyS0 earlyprintk=ttyS0 loglevel=8 ignore_loglevel qvmtest=early"

CONFIG = """system linux-early
ram 0,0xa0000
reserve loc 0xa0000,0x20000
rom 0xc0000,0x40000
ram 1m,255m
{cpus}
load {kernel}
cmdline "{cmdline}"
vdev ioapic loc 0xfec00000 intr apic name myioapic
vdev 8259 loc 0x20
vdev 8259 loc 0xa0
vdev timer8254 intr myioapic:0
vdev mc146818 intr myioapic:8
vdev ser8250 loc 0x3f8 intr myioapic:4 hostdev -
vdev pckeyboard
"""


def expectations(cpus):
    """(name, regex) pairs the kernel log must contain."""
    return [
        ("command line", re.escape("Command line: " + CMDLINE)),
        ("e820 low RAM", r"BIOS-e820: \[mem 0x0000000000000000-0x000000000009ffff\] usable"),
        ("e820 legacy hole", r"BIOS-e820: \[mem 0x00000000000a0000-0x00000000000fffff\] reserved"),
        ("e820 RAM", r"BIOS-e820: \[mem 0x0000000000100000-0x000000000fffffff\] usable"),
        ("e820 IOAPIC", r"BIOS-e820: \[mem 0x00000000fec00000-0x00000000fec00fff\] reserved"),
        ("e820 LAPIC", r"BIOS-e820: \[mem 0x00000000fee00000-0x00000000fee00fff\] reserved"),
        ("RSDP", r"ACPI: RSDP 0x00000000000E0000 000024 \(v02 QVM"),
        ("XSDT", r"ACPI: XSDT 0x[0-9A-F]+ [0-9A-F]+ \(v01 QVM"),
        ("FACP", r"ACPI: FACP 0x[0-9A-F]+ [0-9A-F]+ \(v06 QVM"),
        ("DSDT", r"ACPI: DSDT 0x[0-9A-F]+ [0-9A-F]+ \(v02 QVM"),
        ("APIC", r"ACPI: APIC 0x[0-9A-F]+ [0-9A-F]+ \(v05 QVM"),
        ("IOAPIC", r"IOAPIC\[0\]: apic_id 0, version 17, address 0xfec00000, GSI 0-23"),
        ("SCI override", r"ACPI: INT_SRC_OVR \(bus 0 bus_irq 9 global_irq 9 high level\)"),
        ("MADT for SMP", r"ACPI: Using ACPI \(MADT\) for SMP configuration information"),
        ("CPU count", r"smpboot: Allowing %d CPUs, 0 hotplug CPUs" % cpus),
    ]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--qvm", required=True)
    ap.add_argument("--kernel", required=True)
    ap.add_argument("--cpus", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=190)  # bzImage: ~140 s here under load
    a = ap.parse_args()
    if not os.path.exists("/dev/kvm"):
        print("FAIL: /dev/kvm is missing; this system test needs KVM")
        return 1
    if not os.path.exists(a.kernel):
        print("FAIL: kernel %s missing (scripts/fetch-debian-kernel.sh fetches it)" % a.kernel)
        return 1
    with tempfile.NamedTemporaryFile("w", suffix=".qvmconf", delete=False) as f:
        f.write(CONFIG.format(cpus="cpu\n" * a.cpus, kernel=a.kernel, cmdline=CMDLINE))
        conf = f.name
    start = time.monotonic()
    proc = subprocess.Popen([a.qvm, "@" + conf], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    log = b""  # the guest's serial console (qvm's stdout)
    qlog = b""  # qvm's own log (stderr), kept apart so lines never interleave
    last = expectations(a.cpus)[-1][1]
    signalled = False
    try:
        while time.monotonic() - start < a.timeout:
            r, _, _ = select.select([proc.stdout, proc.stderr], [], [], 1.0)
            if proc.stderr in r:
                qlog += os.read(proc.stderr.fileno(), 65536)
            if proc.stdout in r:
                chunk = os.read(proc.stdout.fileno(), 65536)
                if not chunk:
                    break
                log += chunk
                text = log.decode("utf-8", "replace")
                if not signalled and "Command line:" in text:
                    # spec §8.1 while the guest runs: SIGUSR1 logs a status report, SIGTERM
                    # presses the ACPI power button (this early the kernel cannot act on it).
                    proc.send_signal(signal.SIGUSR1)
                    proc.send_signal(signal.SIGTERM)
                    signalled = True
                if re.search(last, text):
                    break
            elif proc.poll() is not None:
                break
        reached = time.monotonic() - start
        if proc.poll() is None:
            proc.send_signal(signal.SIGQUIT)  # spec §8.1: power cut, exit 3
        try:
            rest, qrest = proc.communicate(timeout=10)
            log += rest
            qlog += qrest
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
    finally:
        os.unlink(conf)
    text = log.decode("utf-8", "replace")
    qtext = qlog.decode("utf-8", "replace")
    qexp = [
        ("SIGUSR1 report", r"status of VM 'linux-early':\n  vCPU 0 (running|stopped): \d+ exits"),
        ("SIGTERM button", r"SIGTERM: pressing the ACPI power button"),
    ]
    exp = expectations(a.cpus) + qexp
    failed = [name for name, rx in expectations(a.cpus) if not re.search(rx, text)]
    failed += [name for name, rx in qexp if not re.search(rx, qtext)]
    for name, _ in exp:
        print("%-16s %s" % (name, "FAIL" if name in failed else "ok"))
    print("kernel reached SMP enumeration after %.1f s; qvm exit code %s" % (reached, proc.returncode))
    if proc.returncode not in (3, 5):
        failed.append("exit code %s (expected 3 after SIGQUIT, or 5 if the emulator stopped first)"
                      % proc.returncode)
    if failed:
        print("FAIL: %s\n--- kernel log tail ---\n%s\n--- qvm log ---\n%s" % (", ".join(failed), text[-3000:],
                                                                          qtext[-2000:]))
        return 1
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
