#!/usr/bin/env python3
"""Debian's SeaBIOS (package seabios, bios-256k.bin) as qvm's firmware boots a virtio-blk PCI disk.

qvm maps the BIOS at the top of 4 GiB (a `rom` with `data load`) and a writable copy below 1 MiB,
and starts the vCPU at the reset vector. SeaBIOS enumerates PCI (it moves our BARs: qvm follows),
finds the virtio-blk disk with its own virtio-pci driver, loads the boot sector and jumps to it.
The boot sector (made here) prints a marker on COM1 and ends the VM through qvm's testdev port.
A third-party driver against our PCI host, BAR moves, virtio-pci capabilities and virtio-blk.

--legacy: the disk is `vdev virtio-blk ... legacy`, the virtio 0.9.5 transport (device 0x1001,
no virtio capabilities, registers in I/O BAR 0), which SeaBIOS drives with its legacy path; its
I/O BAR is moved by SeaBIOS into its own I/O window, so the port bus and PIO ioeventfds follow.

usage: seabios_boot.py --qvm QVM [--bios /usr/share/seabios/bios-256k.bin] [--timeout S] [--legacy]
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

MARKER = b"QVM-BOOT-OK"

# 16-bit real-mode boot sector: print MARKER on port 0x3f8, write 0 to port 0xf4 (testdev), halt.
#   cli; mov si,msg; mov dx,0x3f8; l: lodsb; test al,al; jz d; out dx,al; jmp l
#   d: mov dx,0xf4; mov al,0; out dx,al; hlt; jmp d; msg: db MARKER,13,10,0
CODE = bytes([0xFA, 0xBE, 0x18, 0x7C, 0xBA, 0xF8, 0x03, 0xAC, 0x84, 0xC0, 0x74, 0x03, 0xEE, 0xEB, 0xF8,
              0xBA, 0xF4, 0x00, 0xB0, 0x00, 0xEE, 0xF4, 0xEB, 0xF7]) + MARKER + b"\r\n\x00"

CONFIG = """system seabios-boot
ram 0,0xa0000
ram 0xc0000,0x40000
ram 1m,127m
rom 0xfffc0000,0x40000
cpu
data load 0xfffc0000,{bios}
data load 0xc0000,{bios}
vdev ioapic loc 0xfec00000 intr apic name myioapic
vdev 8259 loc 0x20
vdev 8259 loc 0xa0
vdev timer8254 intr myioapic:0
vdev mc146818 intr myioapic:8
vdev ser8250 loc 0x3f8 intr myioapic:4 hostdev -
vdev pckeyboard
vdev testdev loc io:0xf4
vdev virtio-blk hostdev {disk}{legacy}
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--qvm", required=True)
    ap.add_argument("--bios", default="/usr/share/seabios/bios-256k.bin")
    ap.add_argument("--timeout", type=float, default=90)
    ap.add_argument("--legacy", action="store_true", help="legacy (virtio 0.9.5) virtio-pci disk")
    a = ap.parse_args()
    for path, why in ((a.bios, "install the seabios package"), ("/dev/kvm", "this system test needs KVM")):
        if not os.path.exists(path):
            print("FAIL: %s is missing (%s)" % (path, why))
            return 1
    with tempfile.TemporaryDirectory() as d:
        disk = os.path.join(d, "boot.img")
        with open(disk, "wb") as f:
            f.write(CODE + b"\0" * (510 - len(CODE)) + b"\x55\xaa" + b"\0" * (1024 * 1024 - 512))
        conf = os.path.join(d, "seabios.qvmconf")
        with open(conf, "w") as f:
            f.write(CONFIG.format(bios=os.path.abspath(a.bios), disk=disk,
                                  legacy=" legacy" if a.legacy else ""))
        t0 = time.monotonic()
        try:
            p = subprocess.run([a.qvm, "@" + conf], stdin=subprocess.DEVNULL, capture_output=True,
                               timeout=a.timeout)
        except subprocess.TimeoutExpired as e:
            print("FAIL: no boot within %.0f s\n%s" % (a.timeout, (e.stdout or b"")[-2000:].decode("utf-8", "replace")))
            return 1
        took = time.monotonic() - t0
    out = p.stdout.decode("utf-8", "replace")
    print("qvm exit %d after %.1f s; serial: %r" % (p.returncode, took, out[-200:]))
    if MARKER.decode() not in out or p.returncode != 32:
        print("FAIL: expected the boot sector's marker and exit 32 (testdev 0)\n--- qvm log ---\n%s"
              % p.stderr.decode("utf-8", "replace")[-3000:])
        return 1
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
