#!/usr/bin/env python3
"""Host runner of the qvm guest test kit (Python 3 standard library only).

Boots a VMM (QEMU microvm, QEMU q35, or qvm) with the test guest and a test selection on the
kernel command line, feeds the guest's serial input when it asks ("INPUT <test> <token>"),
collects "TEST <name> PASS|FAIL|PENDING <detail>" and "BENCH <name> <value> <unit>" lines from
COM1 with a timeout, decodes the exit status per VMM, and decides:

  pass  <=>  every expected test reported PASS (or PENDING + the VMM then exited as after a
             guest shutdown/reset, for terminal tests), no unexpected FAIL, and the exit status
             says pass. A missing test is a failure. A missing VMM or /dev/kvm is a failure.

Exit-port conventions (guest writes a 32-bit status to port 0xf4: 0 pass, 1 fail, 2 crash,
3 bad command line):
  QEMU isa-debug-exit   process exit code = (status << 1) | 1
  qvm testdev           process exit code = 32 + status (QNX custom termination codes 32-63)
  guest shutdown/reset  exit code 0 on both (QEMU runs with -no-reboot)

See docs/testing.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import queue
import random
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import Callable

HERE = os.path.dirname(os.path.abspath(__file__))
KIT = os.path.dirname(HERE)
CONFIGS = os.path.join(KIT, "configs")

STATUS_NAMES = {0: "pass", 1: "fail", 2: "guest crash", 3: "bad command line"}

# ---- test groups: one VM boot each ----------------------------------------------------------
GROUPS: dict[str, dict] = {
    "serial": {"tests": ["serial", "serial_rx"]},
    "timers": {"tests": ["pit", "rtc", "lapic_timer"]},
    "irq": {"tests": ["pic", "ioapic"]},
    "platform": {"tests": ["acpi", "e820", "msr_unknown"]},
    # HPET: counter rate, one-shot and periodic comparators on an IOAPIC input (QEMU q35's HPET,
    # qvm's vdev hpet)
    "hpet": {"tests": ["hpet_counter", "hpet_oneshot", "hpet_periodic", "hpet_legacy"], "devices": "hpet"},
    # qvm only: an instruction KVM's emulator gives up on raises #UD (`unsupported instruction
    # fail`, the default; QEMU stops the VM instead)
    "insn": {"tests": ["insn_unsupported"]},
    # `unsupported register ignore` (qvm only): an unknown MSR reads 0, writes are dropped
    "msr_ignore": {"tests": ["msr_unknown"], "devices": "msr_ignore"},
    "smp": {"tests": ["smp", "acpi"], "cpus": 2},
    "pci": {"tests": ["pci"]},
    "poweroff": {"tests": ["poweroff"]},
    # IB700 watchdog: kicked (runs on), then left to expire (the VMM's watchdog action)
    "watchdog": {"tests": ["wdt_kick", "wdt_expire"], "devices": "watchdog"},
    # qvm only: `action reset` ends qvm as a guest reboot does (exit 0)
    "watchdog_reset": {"tests": ["wdt_expire"], "devices": "watchdog_reset"},
    "reset_i8042": {"tests": ["reset_i8042"]},
    "reset_acpi": {"tests": ["reset_acpi"]},
    "bench": {"tests": [], "bench": ["pio", "mmio", "lapic"]},
    # virtio-mmio: the machine's device set "virtio" decides which of these run (see MACHINES)
    "virtio": {"tests": ["virtio_mmio", "virtio_entropy", "virtio_blk", "virtio_console",
                         "virtio_console_multiport"],
               "devices": "virtio"},
    "virtio_legacy": {"tests": ["virtio_mmio", "virtio_entropy", "virtio_blk"],
                      "devices": "virtio_legacy"},
    "virtio_bench": {"tests": [], "bench": ["virtio_blk"], "devices": "virtio"},
    # data safety: write + FLUSH, then the runner kills the VMM with SIGKILL mid-write (KILL_TESTS)
    "virtio_durable": {"tests": ["virtio_blk_durable"], "devices": "virtio"},
    "virtio_pci_durable": {"tests": ["virtio_blk_durable"], "devices": "virtio_pci"},
    # qvm only: the "virtio" tests with virtio-blk on the io_uring engine (`aio io_uring`)
    "virtio_uring": {"tests": ["virtio_mmio", "virtio_entropy", "virtio_blk", "virtio_console",
                               "virtio_console_multiport"],
                     "devices": "virtio_uring"},
    "virtio_uring_durable": {"tests": ["virtio_blk_durable"], "devices": "virtio_uring"},
    # virtio-net to the host through a TAP device in a network namespace the runner owns (NetHost)
    "virtio_net": {"tests": ["virtio_net", "virtio_net_arp_icmp", "virtio_net_udp"], "devices": "virtio_net"},
    "virtio_pci_net": {"tests": ["virtio_net", "virtio_net_arp_icmp", "virtio_net_udp"],
                       "devices": "virtio_pci_net"},
    # virtio over PCI (modern): the machine's device set "virtio_pci" decides which run
    "virtio_pci": {"tests": ["virtio_pci", "virtio_pci_entropy", "virtio_pci_blk", "virtio_pci_console",
                             "virtio_pci_msix", "virtio_pci_intx"],
                   "devices": "virtio_pci"},
    # rate-limited virtio-entropy (vrate=256 bytes/s): 3 x the rate must arrive, in ~2 s, MMIO / PCI
    "virtio_rate": {"tests": ["virtio_entropy_rate"], "devices": "virtio_rate"},
    "virtio_pci_rate": {"tests": ["virtio_pci_entropy_rate"], "devices": "virtio_pci_rate"},
    # qvm only: the sample loadable vdev examples/vdev/regbank (memory and port instances)
    "vdev_sample": {"tests": ["vdev_regbank", "vdev_regbank_pci", "vdev_vecho", "vdev_vecho_pci"],
                    "devices": "vdev_sample"},
    # qvm's shared-memory vdev (QEMU has no QNX guest-shm device: qvm only)
    "shmem": {"tests": ["shmem_local"], "devices": "shmem"},
    # the kit's multiboot flat image with one boot module: multiboot information, then the
    # platform tests on the memory map and ACPI tables found without PVH's help
    "multiboot": {"tests": ["multiboot", "e820", "acpi", "serial", "pit"], "devices": "multiboot"},
}
TERMINAL_TESTS = {"poweroff", "reset_i8042", "reset_acpi"}
# Terminal tests that end with the VMM's watchdog action: qvm exits with 4 (spec §8.3), QEMU
# (-action watchdog=poweroff, -no-reboot) as after a shutdown.
WATCHDOG_TESTS = {"wdt_expire"}
# Tests whose PENDING line tells the runner to kill the VMM with SIGKILL (kill -9); they pass only
# if the VMM was killed that way (exit kind "killed") and the host-side check then passes.
KILL_TESTS = {"virtio_blk_durable"}


# ---- machines ---------------------------------------------------------------------------------
@dataclasses.dataclass
class Machine:
    name: str
    tests: set[str]                 # tests whose devices this machine offers
    cmdline_extra: list[str]        # machine facts the guest needs (quirks, bench targets)
    needs_kvm: bool = True
    device_sets: dict[str, "DeviceSet"] = dataclasses.field(default_factory=dict)

    def offers(self, test: str, devices: str | None) -> bool:
        ds = self.device_sets.get(devices) if devices else None
        return test in self.tests or (ds is not None and test in ds.tests)

    def argv(self, opts: "RunOptions", cmdline: str) -> list[str]:
        raise NotImplementedError

    def decode_exit(self, rc: int) -> tuple[str, int | None]:
        """-> ("status", n) | ("shutdown", None) | ("watchdog", None) | ("error", rc)"""
        raise NotImplementedError

    def watchdog_kinds(self) -> tuple[str, ...]:
        """How the VMM ends when its watchdog expires (WATCHDOG_TESTS)."""
        return ("watchdog",)


QEMU_COMMON = ["-enable-kvm", "-nodefaults", "-no-user-config", "-display", "none",
               "-serial", "stdio", "-no-reboot",
               "-device", "isa-debug-exit,iobase=0xf4,iosize=4"]


class QemuMachine(Machine):
    def watchdog_kinds(self):
        return ("shutdown",)  # -action watchdog=poweroff with -no-reboot: status 0

    def __init__(self, name, machine_arg, tests, cmdline_extra, extra_args=(), device_sets=None):
        super().__init__(name, set(tests), list(cmdline_extra), device_sets=dict(device_sets or {}))
        self.machine_arg = machine_arg
        self.extra_args = list(extra_args)

    def binary(self, opts):
        return opts.qemu or "qemu-system-x86_64"

    def argv(self, opts, cmdline, host: "VirtioHost | None" = None, net: "NetHost | None" = None):
        dev_args: list[str] = []
        ds = self.device_sets.get(opts.devices) if opts.devices else None
        if ds:
            paths = host.paths() if host else {}
            if net:
                paths.update(net.paths())
            paths["d0opts"] = opts.qemu_drive
            paths["d0dev"] = opts.qemu_blk_dev
            dev_args = list(opts.qemu_extra) + [a.format(**paths) for a in ds.qemu_args]
        common = [a for a in QEMU_COMMON if not (ds and ds.restarts and a == "-no-reboot")]
        kernel = ["-kernel", opts.guest]
        if ds and ds.multiboot:
            kernel = ["-kernel", multiboot_image(opts.guest), "-initrd", f"{MB_MODULE} mbarg={MB_ARG}"]
        return ([self.binary(opts), "-M", self.machine_arg] + common + self.extra_args +
                dev_args + ["-smp", str(opts.cpus), "-m", f"{opts.mem_mib}M"] + kernel +
                ["-append", cmdline])

    def decode_exit(self, rc):
        if rc == 0:
            return ("shutdown", None)
        if rc > 0 and rc & 1 and rc < 256:
            return ("status", rc >> 1)
        return ("error", rc)


class QvmMachine(Machine):
    """qvm with a .qvmconf from tests/guest/configs; the guest path reaches the config through
    ${QVM_TEST_GUEST}, the command line is appended as a `cmdline` entry."""

    def __init__(self, device_sets=None):
        super().__init__("qvm", {"serial", "serial_rx", "pit", "rtc", "lapic_timer", "pic",
                                 "ioapic", "acpi", "e820", "smp", "pci", "poweroff", "reset_i8042",
                                 "reset_acpi", "msr_unknown", "dump_wait", "insn_unsupported"},
                         [], device_sets=dict(device_sets or {}))

    def binary(self, opts):
        return opts.qvm or "qvm"

    def config(self, opts):
        if opts.qvm_config:
            return opts.qvm_config
        ds = self.device_sets.get(opts.devices) if opts.devices else None
        if ds and ds.qvm_config:
            return os.path.join(CONFIGS, ds.qvm_config)
        return os.path.join(CONFIGS, "kit-smp2.qvmconf" if opts.cpus == 2 else "kit.qvmconf")

    def argv(self, opts, cmdline, host=None, net=None):
        return [self.binary(opts), "@" + self.config(opts), "cmdline", cmdline]

    def decode_exit(self, rc):
        if rc == 0:
            return ("shutdown", None)
        if rc == 4:
            return ("watchdog", None)
        if 32 <= rc <= 63:
            return ("status", rc - 32)
        return ("error", rc)


# ---- device sets: devices added to a machine for a group, with the facts the guest checks ------
@dataclasses.dataclass
class DeviceSet:
    tests: set[str]                 # tests these devices make possible on the machine
    cmdline: list[str]              # expectations (vmmio=N ...); VirtioHost adds per-run facts
    qemu_args: list[str] = dataclasses.field(default_factory=list)  # {disk} {disk_ro} {vcon}
    qvm_config: str | None = None   # config in tests/guest/configs replacing kit.qvmconf
    bench: set[str] = dataclasses.field(default_factory=set)
    host: bool = True               # needs the VirtioHost fixture (disk files, console FIFOs)
    net: bool = False               # needs the NetHost fixture (netns + TAP + UDP echo); the VMM
                                    # then runs inside that namespace (ip netns exec)
    watchdog_kinds: tuple[str, ...] | None = None  # WATCHDOG_TESTS end this way (None: the machine's)
    # The VMM restarts the guest in place (a watchdog reset): the runner ends it with SIGKILL at
    # the guest's second start banner and reports the exit kind "restarted". QEMU runs without
    # -no-reboot for such a set.
    restarts: bool = False
    # Boot the kit's multiboot image (multiboot_image()) with MB_MODULE as its one boot module
    # (string "PATH mbarg=MB_ARG"): QEMU -kernel/-initrd, qvm ${QVM_TEST_GUEST_MB}/${QVM_TEST_MODULE}.
    multiboot: bool = False


# Multiboot: any file serves as the module (the guest checks its size and FNV-1a against the
# facts the runner computes); the string's argument proves the module string arrived.
MB_MODULE = os.path.join(CONFIGS, "kit.qvmconf")
MB_ARG = 42


def multiboot_image(guest: str) -> str:
    """The multiboot build beside the PVH ELF (tests/guest/CMakeLists.txt)."""
    return os.path.join(os.path.dirname(os.path.abspath(guest)), "qvm-test-guest-mb.bin")


def multiboot_facts() -> dict[str, str]:
    with open(MB_MODULE, "rb") as f:
        data = f.read()
    return {"mb_mods": "1", "mb_mod_size": str(len(data)), "mb_mod_fnv": "0x%x" % fnv1a32(data),
            "mb_mod_arg": str(MB_ARG)}


# virtio-blk backing files: byte at offset o = pattern_byte(o); the guest has the same formula
# (tests/guest/src/tests/virtio_blk.c). The test overwrites sector vblk_wsector with write_byte.
VBLK_SECTORS = 16384        # 8 MiB read-write disk
VBLK_RO_SECTORS = 512       # 256 KiB read-only disk


def pattern_sector(s: int) -> bytes:
    base = (s * 131 + (s >> 8) * 17 + 0x5a) & 0xff
    return bytes((base + i * 7) & 0xff for i in range(512))


_PATTERN_ROWS: list[bytes] = []


def pattern_bytes(sectors: int) -> bytes:
    if not _PATTERN_ROWS:
        _PATTERN_ROWS.extend(bytes((b + i * 7) & 0xff for i in range(512)) for b in range(256))
    return b"".join(_PATTERN_ROWS[(s * 131 + (s >> 8) * 17 + 0x5a) & 0xff] for s in range(sectors))


def write_sector(seed: int) -> bytes:
    return bytes((i * 3 + seed * 29 + 0x11 + (i >> 7)) & 0xff for i in range(512))


def durable_bytes(seed: int, sector: int, count: int) -> bytes:
    """virtio_blk_durable's flushed data (durable_byte() in virtio_blk.c)"""
    k = (seed * 101 + (seed >> 8) + 0x3c) & 0xff
    return b"".join(bytes(((sector + s) * 167 + i * 13 + k + (i >> 6)) & 0xff for i in range(512))
                    for s in range(count))


def fnv1a32(data: bytes) -> int:
    h = 2166136261
    for b in data:
        h = ((h ^ b) * 16777619) & 0xffffffff
    return h


class VirtioHost:
    """Host side of the virtio tests for one run: backing files in a temp dir, the console FIFO
    pair (QEMU `-chardev pipe,path=P` reads P.in and writes P.out), per-run facts for the guest
    command line, the console input channel, and the checks of the host files after exit."""

    def __init__(self, devset: DeviceSet, disk_dir: str | None = None, disk_sectors: int = VBLK_SECTORS):
        self.devset = devset
        self.sectors = disk_sectors
        self.dir = tempfile.mkdtemp(prefix="qvmkit-virtio-", dir=disk_dir)
        self.disk = os.path.join(self.dir, "disk.img")
        self.disk_ro = os.path.join(self.dir, "disk-ro.img")
        self.vcon = os.path.join(self.dir, "vcon")
        self.vport = os.path.join(self.dir, "vport")  # console port 1 (virtio_console_multiport)
        rnd = random.Random()
        self.wsector = rnd.randrange(1, 200)
        self.seed = rnd.randrange(1, 1 << 30)
        self.nonce = f"{rnd.randrange(1 << 32):08x}"
        # virtio_blk_durable: flushed region [dsector, dsector+dcount), un-flushed one after it
        self.dcount = 512
        self.dsector = rnd.randrange(256, min(disk_sectors, VBLK_SECTORS) - 2 * self.dcount)
        self.dseed = rnd.randrange(1, 1 << 30)
        self.vcon_out = bytearray()
        self.vport_out = bytearray()
        self._in_fd = self._out_fd = self._pin_fd = self._pout_fd = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.pristine = pattern_bytes(disk_sectors)
        with open(self.disk, "wb") as f:
            f.write(self.pristine)
        with open(self.disk_ro, "wb") as f:
            f.write(pattern_bytes(VBLK_RO_SECTORS))
        os.chmod(self.disk_ro, 0o444)
        os.mkfifo(self.vcon + ".in")
        os.mkfifo(self.vcon + ".out")
        # O_RDWR: neither side blocks in open(); bytes wait in the pipe until read
        self._in_fd = os.open(self.vcon + ".in", os.O_RDWR | os.O_NONBLOCK)
        self._out_fd = os.open(self.vcon + ".out", os.O_RDWR | os.O_NONBLOCK)
        os.mkfifo(self.vport + ".in")
        os.mkfifo(self.vport + ".out")
        self._pin_fd = os.open(self.vport + ".in", os.O_RDWR | os.O_NONBLOCK)
        self._pout_fd = os.open(self.vport + ".out", os.O_RDWR | os.O_NONBLOCK)
        self._thread = threading.Thread(target=self._read_console, daemon=True)
        self._thread.start()

    def paths(self) -> dict[str, str]:
        return {"disk": self.disk, "disk_ro": self.disk_ro, "vcon": self.vcon, "vport": self.vport}

    def env(self) -> dict[str, str]:
        return {"QVM_TEST_DISK": self.disk, "QVM_TEST_DISK_RO": self.disk_ro,
                "QVM_TEST_VCON": self.vcon, "QVM_TEST_VPORT": self.vport}

    def facts(self) -> dict[str, str]:
        return {"vblk_sectors": str(self.sectors), "vblk_ro_sectors": str(VBLK_RO_SECTORS),
                "vblk_wsector": str(self.wsector), "vblk_seed": str(self.seed),
                "vblk_dsector": str(self.dsector), "vblk_dcount": str(self.dcount),
                "vblk_dseed": str(self.dseed), "vcon_nonce": self.nonce}

    def _read_console(self):
        while not self._stop.is_set():
            r, _, _ = select.select([self._out_fd, self._pout_fd], [], [], 0.2)
            for fd in r:
                try:
                    data = os.read(fd, 4096)
                except BlockingIOError:
                    continue
                if fd == self._out_fd:
                    self.vcon_out += data
                else:
                    self.vport_out += data

    def input(self, test: str, token: str) -> bool:
        """INPUT lines for a virtio device go to its backend (True if handled here)."""
        if test in ("virtio_console", "virtio_pci_console"):
            os.write(self._in_fd, token.encode() + b"\n")
            return True
        if test == "virtio_console_multiport":
            os.write(self._pin_fd, token.encode() + b"\n")
            return True
        return False

    def close(self):
        self._stop.set()
        if self._thread:
            self._thread.join(1)
        for fd in (self._in_fd, self._out_fd, self._pin_fd, self._pout_fd):
            if fd is not None:
                os.close(fd)
        shutil.rmtree(self.dir, ignore_errors=True)

    def check(self, results: list["TestResult"]) -> None:
        """Runner-side checks of PASSed virtio tests: what the guest claims must be in the host
        files / on the console backend. A mismatch turns the test into FAIL."""
        for r in results:
            if r.verdict != "PASS":
                continue
            if r.name in ("virtio_blk", "virtio_pci_blk") and r.name in self.devset.tests:
                problem = self._check_disk(r.detail)
            elif r.name == "virtio_blk_durable":
                problem = self._check_durable(r.detail)
            elif r.name in ("virtio_console", "virtio_pci_console"):
                want = f"qvm-vcon-out {self.nonce}\n".encode()
                problem = None if want in self.vcon_out else (
                    f"console backend did not receive {want!r} (got {bytes(self.vcon_out[:200])!r})")
            elif r.name == "virtio_console_multiport":
                want = f"qvm-vport-out {self.nonce}\n".encode()
                problem = None if want in self.vport_out else (
                    f"port 1 backend did not receive {want!r} (got {bytes(self.vport_out[:200])!r})")
            else:
                continue
            if problem:
                r.verdict = "FAIL"
                r.detail += " -> host check: " + problem
            else:
                r.detail += " -> host check ok"

    def _check_disk(self, detail: str) -> str | None:
        m = re.search(r"\bwsector=(\d+) wfnv=([0-9a-f]{8})\b", detail)
        if not m:
            return "no wsector=/wfnv= in the result"
        ws, wfnv = int(m.group(1)), int(m.group(2), 16)
        if ws != self.wsector:
            return f"guest wrote sector {ws}, runner asked for {self.wsector}"
        with open(self.disk, "rb") as f:
            data = f.read()
        if len(data) != self.sectors * 512:
            return f"disk file is {len(data)} bytes, expected {self.sectors * 512}"
        sec = data[ws * 512:(ws + 1) * 512]
        if fnv1a32(sec) != wfnv:
            return f"sector {ws} in the file has FNV {fnv1a32(sec):08x}, guest reported {wfnv:08x}"
        if sec != write_sector(self.seed):
            return f"sector {ws} in the file is not the expected written data"
        rest = data[:ws * 512] + data[(ws + 1) * 512:]
        if rest != self.pristine[:ws * 512] + self.pristine[(ws + 1) * 512:]:
            return "sectors other than the written one changed"
        with open(self.disk_ro, "rb") as f:
            if f.read() != pattern_bytes(VBLK_RO_SECTORS):
                return "the read-only disk file changed"
        return None

    def _check_durable(self, detail: str) -> str | None:
        """After kill -9: every flushed byte is in the file; only the flushed and the un-flushed
        regions may differ from the pattern (the un-flushed one may hold anything)."""
        m = re.search(r"\bdsector=(\d+) dcount=(\d+) dfnv=([0-9a-f]{8})\b", detail)
        if not m:
            return "no dsector=/dcount=/dfnv= in the result"
        ds, dc, dfnv = int(m.group(1)), int(m.group(2)), int(m.group(3), 16)
        if (ds, dc) != (self.dsector, self.dcount):
            return f"guest wrote sectors {ds}+{dc}, runner asked for {self.dsector}+{self.dcount}"
        want = durable_bytes(self.dseed, ds, dc)
        if fnv1a32(want) != dfnv:
            return f"guest's FNV {dfnv:08x} is not that of the expected data ({fnv1a32(want):08x})"
        with open(self.disk, "rb") as f:
            data = f.read()
        if len(data) != self.sectors * 512:
            return f"disk file is {len(data)} bytes, expected {self.sectors * 512}"
        got = data[ds * 512:(ds + dc) * 512]
        if got != want:
            bad = [s for s in range(dc) if got[s * 512:(s + 1) * 512] != want[s * 512:(s + 1) * 512]]
            return (f"{len(bad)} of {dc} flushed sectors are not in the host file after kill -9 "
                    f"(first: sector {ds + bad[0]})")
        lo, hi = ds * 512, (ds + 2 * dc) * 512
        if data[:lo] != self.pristine[:lo] or data[hi:] != self.pristine[hi:]:
            return "sectors outside the written regions changed"
        return None


# UDP echo server run inside the namespace: argv ADDR PORT; prints "ready"; counts datagrams to stderr
UDP_ECHO_SRC = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2])))
print("ready", flush=True)
while True:
    data, peer = s.recvfrom(65535)
    s.sendto(data, peer)
"""
# ICMP echo client (no ping(8) on this fleet): argv ADDR COUNT SIZE; raw socket, exit 0 iff every
# request got a reply with the same id, seq and payload within 2 s
PING_SRC = r"""
import os, socket, struct, sys, time
def csum(b):
    if len(b) % 2: b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff
dst, count, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
ident, ok = os.getpid() & 0xffff, 0
for seq in range(1, count + 1):
    data = bytes((seq * 31 + i * 11) & 0xff for i in range(size))
    hdr = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
    s.sendto(struct.pack("!BBHHH", 8, 0, csum(hdr + data), ident, seq) + data, (dst, 0))
    end = time.monotonic() + 2
    while time.monotonic() < end:
        s.settimeout(max(end - time.monotonic(), 0.01))
        try:
            pkt, _ = s.recvfrom(65535)
        except socket.timeout:
            break
        icmp = pkt[(pkt[0] & 15) * 4:]
        t, _, _, i, q = struct.unpack("!BBHHH", icmp[:8])
        if t == 0 and i == ident and q == seq and icmp[8:] == data and csum(icmp) == 0:
            ok += 1
            break
    time.sleep(0.1)
print(f"{ok}/{count} echo replies from {dst} ({size} bytes)")
sys.exit(0 if ok == count else 1)
"""


class NetHost:
    """Host side of the virtio-net tests for one run: a fresh network namespace (unique name)
    holding a TAP device with the host-side address and a UDP echo server; the VMM is started
    inside it (`ip netns exec NS ...`) so it opens the TAP there. The host kernel answers ARP and
    ICMP; on `INPUT virtio_net_arp_icmp <token>` the runner pings the guest from the namespace and
    then sends the token. Everything is removed on close (deleting the namespace removes the TAP).
    Traffic never leaves the namespace."""

    def __init__(self, devset: DeviceSet, pings: int = 3):
        rnd = random.Random()
        self.devset = devset
        self.ns = f"qvmkit-{os.getpid()}-{rnd.randrange(1 << 24):06x}"
        self.tap = "qvmtap0"                      # unique per namespace; IFNAMSIZ-safe
        net = rnd.randrange(1, 255)
        self.host_ip, self.guest_ip = f"10.77.{net}.1", f"10.77.{net}.2"
        self.mac = "52:54:00:%02x:%02x:%02x" % (rnd.randrange(256), rnd.randrange(256), rnd.randrange(256))
        self.udp_port = 7777
        self.pings = pings
        self.ping_result: tuple[int, str] | None = None
        self._ping_thread: threading.Thread | None = None
        self._echo: subprocess.Popen | None = None
        self._created = False
        # qvm only: asks the VMM for a SIGUSR1 status report once the ping is answered; the
        # report must show the device's rings and counters (check_status()).
        self.status_probe: Callable[[], None] | None = None
        self.status_sent = False
        try:
            self._sh("ip", "netns", "add", self.ns)
            self._created = True
            self._sh("ip", "-n", self.ns, "link", "set", "lo", "up")
            self._sh("ip", "-n", self.ns, "tuntap", "add", "dev", self.tap, "mode", "tap")
            self._sh("ip", "-n", self.ns, "addr", "add", f"{self.host_ip}/24", "dev", self.tap)
            self._sh("ip", "-n", self.ns, "link", "set", self.tap, "up")
            for k in ("all", "default", self.tap):   # no IPv6 chatter on the link
                subprocess.run(["ip", "netns", "exec", self.ns, "sysctl", "-q", "-w",
                                f"net.ipv6.conf.{k}.disable_ipv6=1"], capture_output=True)
            self._echo = subprocess.Popen(["ip", "netns", "exec", self.ns, sys.executable, "-c",
                                           UDP_ECHO_SRC, self.host_ip, str(self.udp_port)],
                                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            r, _, _ = select.select([self._echo.stdout], [], [], 5)
            if not r or b"ready" not in self._echo.stdout.readline():
                raise RuntimeError("UDP echo server did not start in the namespace")
        except Exception:
            self.close()
            raise

    @staticmethod
    def _sh(*argv: str) -> None:
        r = subprocess.run(argv, capture_output=True, text=True)
        if r.returncode:
            raise RuntimeError(f"{' '.join(argv)}: {r.stderr.strip()}")

    def wrap(self, argv: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.ns] + argv

    def paths(self) -> dict[str, str]:
        return {"tap": self.tap, "mac": self.mac}

    def env(self) -> dict[str, str]:
        return {"QVM_TEST_TAP": self.tap, "QVM_TEST_MAC": self.mac}

    def facts(self) -> dict[str, str]:
        return {"vnet": "1", "vnet_mac": self.mac, "vnet_ip": f"{self.guest_ip}/24",
                "vnet_peer": self.host_ip, "vnet_udp_port": str(self.udp_port),
                "vnet_ping_in": str(self.pings)}

    def input(self, test: str, token: str, send: Callable[[str], None]) -> bool:
        if test != "virtio_net_arp_icmp":
            return False

        def pinger():
            r = subprocess.run(["ip", "netns", "exec", self.ns, sys.executable, "-c", PING_SRC,
                                self.guest_ip, str(self.pings), "1000"],
                               capture_output=True, text=True)
            self.ping_result = (r.returncode, (r.stdout + r.stderr).strip().splitlines()[-2:])
            if self.status_probe:
                self.status_probe()
                self.status_sent = True
                time.sleep(0.2)  # the report is logged before the guest goes on
            send(token)

        self._ping_thread = threading.Thread(target=pinger, daemon=True)
        self._ping_thread.start()
        return True

    def check(self, results: list["TestResult"]) -> None:
        for r in results:
            if r.verdict != "PASS" or r.name != "virtio_net_arp_icmp":
                continue
            if self._ping_thread:
                self._ping_thread.join(10)
            if not self.ping_result or self.ping_result[0] != 0:
                r.verdict = "FAIL"
                r.detail += f" -> host check: ping of the guest from the namespace failed: {self.ping_result}"
            else:
                r.detail += f" -> host ping ok ({'; '.join(self.ping_result[1])})"

    # What a SIGUSR1 report says of a virtio-net device that has exchanged frames (spec §8:
    # status reports; docs/debugging.md): the transport state, every ready queue's indices and
    # the device's counters.
    STATUS_PATTERNS = (
        ("device status", r"status 0x0f ACKNOWLEDGE DRIVER FEATURES_OK DRIVER_OK, features 0x[0-9a-f]+"),
        ("receive queue", r"queue 0: size \d+ avail \d+ next_avail \d+ \(\d+ pending\) used \d+"),
        ("transmit queue", r"queue 1: size \d+ avail \d+ next_avail \d+ \(\d+ pending\) used [1-9]"),
        ("counters", r"link up, rx [1-9]\d* frames .* tx [1-9]\d* frames"),
        ("receive state", r"pair 1: rx (reading|paused), \d+ buffers held"),
    )

    def check_status(self, err: str, results: list["TestResult"]) -> None:
        if not self.status_sent:
            return
        missing = [n for n, rx in self.STATUS_PATTERNS if not re.search(rx, err)]
        for r in results:
            if r.name == "virtio_net_arp_icmp" and r.verdict == "PASS":
                if missing:
                    r.verdict = "FAIL"
                    r.detail += " -> SIGUSR1 report lacks: " + ", ".join(missing)
                else:
                    r.detail += " -> SIGUSR1 report ok"

    def close(self):
        if self._echo:
            self._echo.kill()
            self._echo.wait()
            self._echo = None
        if self._created:
            subprocess.run(["ip", "netns", "del", self.ns], capture_output=True)
            self._created = False


# QEMU microvm virtio-mmio device set. microvm (with KVM: a second IOAPIC) has 24 transports at
# 0xfeb00000 + 0x200*n on GSIs 24+n, filled from the top; its DSDT describes only populated
# ones (LNRO0005, Memory32Fixed + level-triggered Interrupt). Transports are legacy (version 1)
# unless virtio-mmio.force-legacy=false.
QEMU_VIRTIO_ARGS = [
    "-device", "virtio-rng-device",
    "-drive", "file={disk},if=none,id=d0,format=raw,{d0opts}",
    "-device", "virtio-blk-device,drive=d0{d0dev}",
    "-drive", "file={disk_ro},if=none,id=d1,format=raw,readonly=on",
    "-device", "virtio-blk-device,drive=d1",
    "-device", "virtio-serial-device",
    "-chardev", "pipe,id=vc0,path={vcon}",
    "-device", "virtconsole,chardev=vc0",
    # port 1 for virtio_console_multiport (after the legacy slice QEMU_VIRTIO_ARGS[:10])
    "-chardev", "pipe,id=vp1,path={vport}",
    "-device", "virtserialport,chardev=vp1,name=org.qvm.kit,nr=1",
]
VIRTIO_NET_ALL = {"virtio_net", "virtio_net_arp_icmp", "virtio_net_udp"}
VRATE = 256   # bytes/s of the rate-limited entropy devices (device sets virtio_rate, virtio_pci_rate)
VIRTIO_ALL = {"virtio_mmio", "virtio_entropy", "virtio_blk", "virtio_console", "virtio_blk_durable",
              "virtio_console_multiport"}
QEMU_MICROVM_DEVSETS = {
    "virtio": DeviceSet(VIRTIO_ALL,
                        ["vmmio=4", "vmmio_ids=2,2,3,4", "vmmio_version=2", "ventropy=1", "vblk=2",
                         "vblk_ro=1", "vblk_flush=1", "vcon=1"],
                        ["-global", "virtio-mmio.force-legacy=false"] + QEMU_VIRTIO_ARGS,
                        bench={"virtio_blk"}),
    "virtio_legacy": DeviceSet({"virtio_mmio", "virtio_entropy", "virtio_blk"},
                               ["vmmio=3", "vmmio_ids=2,2,4", "vmmio_version=1", "ventropy=1",
                                "vblk=2", "vblk_ro=1", "vblk_flush=1"],
                               ["-global", "virtio-mmio.force-legacy=true"] + QEMU_VIRTIO_ARGS[:10]),
    # virtio-net (modern virtio-mmio) on a TAP in the runner's namespace; vhost is absent here
    "virtio_net": DeviceSet(VIRTIO_NET_ALL, [],
                            ["-global", "virtio-mmio.force-legacy=false",
                             "-netdev", "tap,id=n0,ifname={tap},script=no,downscript=no,vhost=off",
                             "-device", "virtio-net-device,netdev=n0,mac={mac}"],
                            host=False, net=True, bench={"virtio_net_tx"}),
    # one virtio-rng limited to 256 bytes per 1000 ms window (QEMU's rate limit: max-bytes per
    # period); the guest asks for 3 x 256 bytes: one window now, one per second after
    "virtio_rate": DeviceSet({"virtio_entropy_rate"}, [f"vrate={VRATE}"],
                             ["-global", "virtio-mmio.force-legacy=false",
                              "-device", f"virtio-rng-device,max-bytes={VRATE},period=1000"],
                             host=False),
}
# QEMU q35 virtio-pci device set: the same devices as modern-only PCI functions on bus 0
# (disable-legacy=on: device ids 0x1040+type, no I/O BAR); SeaBIOS assigns the BARs and fills
# the Interrupt Line. virtio-serial-pci gets vectors=3 (default 2) so that receiveq and
# transmitq have their own MSI-X entries. virtio_pci_msix's console transmit adds
# "qvm-vcon-msix" to vcon.out.
QEMU_VIRTIO_PCI_ARGS = [
    "-device", "virtio-rng-pci,disable-legacy=on,disable-modern=off",
    "-drive", "file={disk},if=none,id=d0,format=raw,{d0opts}",
    "-device", "virtio-blk-pci,drive=d0,disable-legacy=on,disable-modern=off{d0dev}",
    "-drive", "file={disk_ro},if=none,id=d1,format=raw,readonly=on",
    "-device", "virtio-blk-pci,drive=d1,disable-legacy=on,disable-modern=off",
    "-device", "virtio-serial-pci,disable-legacy=on,disable-modern=off,vectors=3",
    "-chardev", "pipe,id=vc0,path={vcon}",
    "-device", "virtconsole,chardev=vc0",
]
VIRTIO_PCI_ALL = {"virtio_pci", "virtio_pci_entropy", "virtio_pci_blk", "virtio_pci_console",
                  "virtio_pci_msix", "virtio_pci_intx", "virtio_blk_durable"}
VIRTIO_PCI_FACTS = ["vpci=4", "vpci_ids=2,2,3,4", "vpci_modern=1", "ventropy=1", "vblk=2", "vblk_ro=1",
                    "vblk_flush=1", "vcon=1"]
QEMU_Q35_DEVSETS = {
    "virtio_pci": DeviceSet(VIRTIO_PCI_ALL, VIRTIO_PCI_FACTS, QEMU_VIRTIO_PCI_ARGS),
    "virtio_pci_net": DeviceSet(VIRTIO_NET_ALL, [],
                                ["-netdev", "tap,id=n0,ifname={tap},script=no,downscript=no,vhost=off",
                                 "-device", "virtio-net-pci,netdev=n0,mac={mac},disable-legacy=on,"
                                 "disable-modern=off"],
                                host=False, net=True),
    "virtio_pci_rate": DeviceSet({"virtio_pci_entropy_rate"}, [f"vrate={VRATE}"],
                                 ["-device", f"virtio-rng-pci,max-bytes={VRATE},period=1000,"
                                  "disable-legacy=on,disable-modern=off"],
                                 host=False),
    # q35's own HPET (no extra arguments)
    "hpet": DeviceSet({"hpet_counter", "hpet_oneshot", "hpet_periodic", "hpet_legacy"}, [], [], host=False),
    # -kernel with a multiboot image: QEMU's multiboot loader (SeaBIOS + its option ROM)
    "multiboot": DeviceSet({"multiboot"}, [], [], host=False, multiboot=True),
    # QEMU's IB700 model with poweroff as its action (with -no-reboot QEMU then exits 0)
    "watchdog": DeviceSet({"wdt_kick", "wdt_expire"}, [],
                          ["-device", "ib700", "-action", "watchdog=poweroff"], host=False),
    # QEMU's IB700 resetting the machine (no -no-reboot: SeaBIOS boots the guest again)
    "watchdog_reset": DeviceSet({"wdt_expire"}, [], ["-device", "ib700", "-action", "watchdog=reset"],
                                host=False, watchdog_kinds=("restarted",), restarts=True),
}
# qvm: configs/kit-virtio.qvmconf (entropy, blk, read-only blk, console; in DSDT order).
QVM_DEVSETS = {
    "virtio": DeviceSet(VIRTIO_ALL,
                        ["vmmio=4", "vmmio_ids=4,2,2,3", "vmmio_version=2", "ventropy=1", "vblk=2",
                         "vblk_ro=1", "vblk_flush=1", "vcon=1"],
                        qvm_config="kit-virtio.qvmconf", bench={"virtio_blk"}),
    "virtio_legacy": DeviceSet({"virtio_mmio", "virtio_entropy"},
                               ["vmmio=1", "vmmio_ids=4", "vmmio_version=1", "ventropy=1"],
                               qvm_config="kit-virtio-legacy.qvmconf"),
    # configs/kit-virtio-uring.qvmconf: kit-virtio with `aio io_uring` on both disks
    "virtio_uring": DeviceSet(VIRTIO_ALL,
                              ["vmmio=4", "vmmio_ids=4,2,2,3", "vmmio_version=2", "ventropy=1", "vblk=2",
                               "vblk_ro=1", "vblk_flush=1", "vcon=1"],
                              qvm_config="kit-virtio-uring.qvmconf", bench={"virtio_blk"}),
    # configs/kit-virtio-pci.qvmconf: the kit-virtio devices without loc/intr, so on PCI bus 0.
    # INTx: qvm writes the GSI (16 + slot % 8, the DSDT _PRT's routing) into the Interrupt Line.
    "virtio_pci": DeviceSet(VIRTIO_PCI_ALL, VIRTIO_PCI_FACTS,
                            qvm_config="kit-virtio-pci.qvmconf"),
    # virtio-net: prepared for qvm's device (not in CTest until it lands). The config takes the
    # TAP name and MAC from ${QVM_TEST_TAP} / ${QVM_TEST_MAC}; qvm runs inside the runner's
    # namespace, where the TAP already exists with the host-side address.
    "virtio_net": DeviceSet(VIRTIO_NET_ALL, [], qvm_config="kit-virtio-net.qvmconf", host=False, net=True,
                            bench={"virtio_net_tx"}),
    "virtio_pci_net": DeviceSet(VIRTIO_NET_ALL, [], qvm_config="kit-virtio-pci-net.qvmconf",
                                host=False, net=True),
    # configs/kit-virtio-rate.qvmconf: `vdev virtio-entropy ... rate 256` once on virtio-mmio and
    # once on PCI; each group drives the first entropy device of its transport
    "virtio_rate": DeviceSet({"virtio_entropy_rate"}, [f"vrate={VRATE}"],
                             qvm_config="kit-virtio-rate.qvmconf", host=False),
    "virtio_pci_rate": DeviceSet({"virtio_pci_entropy_rate"}, [f"vrate={VRATE}"],
                                 qvm_config="kit-virtio-rate.qvmconf", host=False),
    # configs/kit-wdt.qvmconf: kit.qvmconf + vdev wdt-ib700 (action terminate: exit 4)
    "watchdog": DeviceSet({"wdt_kick", "wdt_expire"}, [], qvm_config="kit-wdt.qvmconf", host=False),
    # configs/kit-wdt-reset.qvmconf: the same with `action reset`
    "watchdog_reset": DeviceSet({"wdt_expire"}, [], qvm_config="kit-wdt-reset.qvmconf", host=False,
                                watchdog_kinds=("restarted",), restarts=True),
    # configs/kit-vdev-sample.qvmconf: vdev-regbank.so from ${QVM_VDEV_SAMPLES}, in memory (with an
    # interrupt and `id`) and in port space
    "vdev_sample": DeviceSet({"vdev_regbank", "vdev_regbank_pci", "vdev_vecho", "vdev_vecho_pci"},
                             ["regbank=0xd0002000", "regbank_io=0x520", "regbank_gsi=7",
                              "regbank_id=0x1234abcd"],
                             qvm_config="kit-vdev-sample.qvmconf", host=False),
    # configs/kit-hpet.qvmconf: kit.qvmconf + vdev hpet
    "hpet": DeviceSet({"hpet_counter", "hpet_oneshot", "hpet_periodic", "hpet_legacy"}, [],
                      qvm_config="kit-hpet.qvmconf",
                      host=False),
    # configs/kit-multiboot.qvmconf: kit.qvmconf loading the multiboot image with one module
    "multiboot": DeviceSet({"multiboot"}, [], qvm_config="kit-multiboot.qvmconf", host=False,
                           multiboot=True),
    # configs/kit-msr-ignore.qvmconf: kit.qvmconf + `unsupported register ignore`
    "msr_ignore": DeviceSet({"msr_unknown"}, ["msr_expect=zero"], qvm_config="kit-msr-ignore.qvmconf",
                            host=False),
    # configs/kit-shmem.qvmconf: vdev shmem on PCI and with a memory-mapped factory page
    # 2,000 attach/detach cycles (a leaked memslot or fd would fail within ~500; unit_shm runs
    # 10,000 without the VM)
    "shmem": DeviceSet({"shmem_local"}, ["shm_mmio=0xd0010000", "shm_mmio_gsi=10", "shm_cycles=2000"],
                       qvm_config="kit-shmem.qvmconf", host=False),
}


# dump_wait needs no device (it spins, then passes); in no group: tests/system/dump.py drives it
# under qvm, and `--tests dump_wait --expect dump_wait_ms=2000` runs it anywhere.
ALL_BASE = {"serial", "serial_rx", "pit", "rtc", "lapic_timer", "pic", "ioapic", "acpi", "e820",
            "smp", "poweroff", "reset_acpi", "msr_unknown", "dump_wait"}
MACHINES: dict[str, Machine] = {
    # microvm: no PCI, no i8042, hardware-reduced ACPI (GED sleep/reset registers).
    # With KVM its PIT drives IOAPIC pin 2 although the MADT has no override: irq0_gsi=2.
    "qemu-microvm": QemuMachine("qemu-microvm", "microvm,pit=on,pic=on,rtc=on,isa-serial=on",
                                ALL_BASE, ["irq0_gsi=2", "bench_mmio=0xfeb00000"],
                                device_sets=QEMU_MICROVM_DEVSETS),
    # q35 + SeaBIOS (PVH via QEMU's option ROM): PCIe/ECAM, i8042, ICH9 ACPI PM.
    "qemu-q35": QemuMachine("qemu-q35", "q35", ALL_BASE | {"pci", "reset_i8042"},
                            ["bench_mmio=0xfed00000"], ["-vga", "none"],
                            device_sets=QEMU_Q35_DEVSETS),
    "qvm": QvmMachine(QVM_DEVSETS),
}


# ---- one run ----------------------------------------------------------------------------------
@dataclasses.dataclass
class RunOptions:
    vmm: str
    guest: str
    tests: list[str]
    bench: list[str] = dataclasses.field(default_factory=list)
    cpus: int = 1
    mem_mib: int = 128
    expect: dict[str, str] = dataclasses.field(default_factory=dict)  # override cmdline facts
    timeout: float = 60.0
    qemu: str | None = None
    qvm: str | None = None
    qvm_config: str | None = None
    verbose: bool = False
    extra_cmdline: list[str] = dataclasses.field(default_factory=list)
    devices: str | None = None      # device set of the machine (e.g. "virtio")
    disk_dir: str | None = None     # where the virtio disk files go (default: tempfile's dir)
    disk_mib: int | None = None     # size of the read-write disk (default 8 MiB)
    qemu_drive: str = "cache=writeback"  # QEMU -drive options of the read-write disk
    qemu_blk_dev: str = ""          # appended to that disk's -device (e.g. ",iothread=io0")
    qemu_extra: list[str] = dataclasses.field(default_factory=list)  # e.g. -object iothread,id=io0
    # Peak RSS of the VMM by running it under `/usr/bin/time -f %M` (a small C parent): the
    # ru_maxrss of a child of this runner also counts the runner's own pages before exec (fork
    # and posix_spawn alike: the pre-exec mm's high-water mark is kept), ~14 MiB of Python.
    measure_rss: bool = False


@dataclasses.dataclass
class TestResult:
    name: str
    verdict: str       # PASS | FAIL | MISSING
    detail: str


@dataclasses.dataclass
class RunResult:
    ok: bool
    tests: list[TestResult]
    problems: list[str]
    bench: dict[str, tuple[float, str]]
    exit_kind: str
    exit_value: int | None
    returncode: int | None
    timed_out: bool
    t_first_byte: float | None
    t_exit: float | None
    peak_rss_kib: int | None     # the VMM's peak RSS; only with RunOptions.measure_rss
    output: str
    argv: list[str]


def build_cmdline(opts: RunOptions, machine: Machine, host: VirtioHost | None = None,
                  net: "NetHost | None" = None) -> str:
    facts = {"cpus": str(opts.cpus), "mem": f"{opts.mem_mib}M", "now": str(int(time.time()))}
    ds = machine.device_sets.get(opts.devices) if opts.devices else None
    for item in machine.cmdline_extra + (ds.cmdline if ds else []):
        k, v = item.split("=", 1)
        facts[k] = v
    if host:
        facts.update(host.facts())
    if net:
        facts.update(net.facts())
    if ds and ds.multiboot:
        facts.update(multiboot_facts())
    facts.update(opts.expect)
    parts = []
    if opts.tests:
        parts.append("tests=" + ",".join(opts.tests))
    if opts.bench:
        parts.append("bench=" + ",".join(opts.bench))
    parts += [f"{k}={v}" for k, v in facts.items()]
    parts += opts.extra_cmdline
    return " ".join(parts)


def evaluate(output: str, expected: list[str], exit_kind: str, exit_value: int | None,
             timed_out: bool = False, watchdog_kinds: tuple[str, ...] = ("watchdog",)
             ) -> tuple[bool, list[TestResult], list[str], dict[str, tuple[float, str]]]:
    """Turn console output + decoded VMM exit into a verdict. Pure: unit-tested."""
    seen: dict[str, tuple[str, str]] = {}
    bench: dict[str, tuple[float, str]] = {}
    problems: list[str] = []
    for raw in output.splitlines():
        line = raw.strip("\r")
        if line.startswith("TEST "):
            f = line.split(" ", 3)
            if len(f) < 3 or f[2] not in ("PASS", "FAIL", "PENDING"):
                problems.append(f"malformed result line: {line!r}")
                continue
            name, verdict, detail = f[1], f[2], f[3] if len(f) > 3 else ""
            if name in seen and seen[name][0] != "PENDING":
                problems.append(f"test {name} reported twice")
                verdict = "FAIL"
            seen[name] = (verdict, detail)
        elif line.startswith("BENCH "):
            f = line.split()
            try:
                bench[f[1]] = (float(f[2]), f[3] if len(f) > 3 else "")
            except (IndexError, ValueError):
                problems.append(f"malformed bench line: {line!r}")
        elif line.startswith("FAULT "):
            problems.append("guest exception: " + line)

    results: list[TestResult] = []
    terminal_expected = [t for t in expected if t in TERMINAL_TESTS | WATCHDOG_TESTS]
    watchdog_expected = [t for t in expected if t in WATCHDOG_TESTS]
    kill_expected = [t for t in expected if t in KILL_TESTS]
    for name in expected:
        if name not in seen:
            results.append(TestResult(name, "MISSING", "no TEST line"))
            continue
        verdict, detail = seen[name]
        if verdict == "PENDING":
            if name in KILL_TESTS and exit_kind == "killed" and not timed_out:
                results.append(TestResult(name, "PASS", detail + " -> VMM killed with SIGKILL"))
            elif name in TERMINAL_TESTS and exit_kind == "shutdown" and not timed_out:
                results.append(TestResult(name, "PASS", detail + " -> VMM exited (shutdown/reset)"))
            elif name in WATCHDOG_TESTS and exit_kind in watchdog_kinds and not timed_out:
                results.append(TestResult(name, "PASS", detail + f" -> VMM exited ({exit_kind})"))
            else:
                results.append(TestResult(name, "FAIL", detail + f" -> VMM did not stop as expected "
                                          f"({'timeout' if timed_out else exit_kind})"))
        else:
            results.append(TestResult(name, verdict, detail))
    for name, (verdict, detail) in seen.items():
        if name not in expected and verdict != "PASS":
            results.append(TestResult(name, "FAIL", "(unexpected) " + detail))

    if timed_out:
        problems.append("timeout: VMM killed")
    elif kill_expected:
        if exit_kind != "killed":
            problems.append(f"expected the runner to kill the VMM (SIGKILL), got {exit_kind} {exit_value}")
    elif watchdog_expected:
        if exit_kind not in watchdog_kinds:
            problems.append(f"expected the watchdog's exit ({'/'.join(watchdog_kinds)}), got {exit_kind} {exit_value}")
    elif terminal_expected:
        if exit_kind != "shutdown":
            problems.append(f"expected a guest shutdown/reset exit, got {exit_kind} {exit_value}")
    elif exit_kind == "status":
        if exit_value != 0:
            problems.append(f"exit status {exit_value} ({STATUS_NAMES.get(exit_value, '?')})")
    else:
        problems.append(f"VMM exit not through the exit port: {exit_kind} {exit_value}")

    ok = not problems and all(r.verdict == "PASS" for r in results)
    return ok, results, problems, bench


def preflight(machine: Machine, opts: RunOptions) -> list[str]:
    errs = []
    binary = machine.binary(opts)
    if not (os.path.isfile(binary) and os.access(binary, os.X_OK)) and not shutil.which(binary):
        errs.append(f"VMM binary {binary!r} not found (install qemu-system-x86 or pass --qemu/--qvm)")
    if machine.needs_kvm and not os.access("/dev/kvm", os.R_OK | os.W_OK):
        errs.append("/dev/kvm is missing or not accessible: these system tests need KVM")
    if not os.path.isfile(opts.guest):
        errs.append(f"guest image {opts.guest!r} not found (build target qvm-test-guest)")
    ds = machine.device_sets.get(opts.devices) if opts.devices else None
    if ds and ds.multiboot and not os.path.isfile(multiboot_image(opts.guest)):
        errs.append(f"multiboot image {multiboot_image(opts.guest)!r} not found (build target "
                    "qvm-test-guest-mb)")
    if ds and ds.net:
        if os.geteuid() != 0:
            errs.append("virtio-net tests need root (network namespace + TAP device)")
        if not shutil.which("ip"):
            errs.append("virtio-net tests need iproute2 (`ip`)")
        if not os.path.exists("/dev/net/tun"):
            errs.append("virtio-net tests need /dev/net/tun")
    if opts.devices and opts.devices not in machine.device_sets:
        errs.append(f"machine {machine.name} has no device set {opts.devices!r}")
    for t in opts.tests:
        if not machine.offers(t, opts.devices):
            errs.append(f"machine {machine.name} does not offer the devices of test {t!r}"
                        + (f" (device set {opts.devices})" if opts.devices else ""))
    return errs


def run(opts: RunOptions, on_line: Callable[[str], None] | None = None) -> RunResult:
    machine = MACHINES[opts.vmm]
    errs = preflight(machine, opts)
    ds = machine.device_sets.get(opts.devices) if opts.devices else None
    host = net = None
    if ds and ds.host and not errs:
        host = VirtioHost(ds, opts.disk_dir, (opts.disk_mib or VBLK_SECTORS // 2048) * 2048)
    try:
        if ds and ds.net and not errs:
            try:
                net = NetHost(ds)
            except (RuntimeError, OSError) as e:
                errs.append(f"network namespace set-up failed: {e}")
        return _run(opts, machine, errs, host, on_line, net)
    finally:
        if net:
            net.close()
        if host:
            host.close()


def _run(opts: RunOptions, machine: Machine, errs: list[str], host: VirtioHost | None,
         on_line: Callable[[str], None] | None, net: "NetHost | None" = None) -> RunResult:
    cmdline = build_cmdline(opts, machine, host, net)
    argv = machine.argv(opts, cmdline, host, net)
    rss_file = None
    if opts.measure_rss and os.path.exists("/usr/bin/time"):
        fd, rss_file = tempfile.mkstemp(prefix="qvmkit-rss-")
        os.close(fd)
        argv = ["/usr/bin/time", "-f", "%M", "-o", rss_file] + argv
    if net:
        argv = net.wrap(argv)
    if errs:
        return RunResult(False, [TestResult(t, "MISSING", "not run") for t in opts.tests], errs, {},
                         "error", None, None, False, None, None, None, "", argv)
    env = dict(os.environ, QVM_TEST_GUEST=os.path.abspath(opts.guest),
               QVM_TEST_GUEST_MB=multiboot_image(opts.guest), QVM_TEST_MODULE=MB_MODULE)
    if host:
        env.update(host.env())
    if net:
        env.update(net.env())
    t0 = time.monotonic()
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env, start_new_session=True)
    lines: "queue.Queue[tuple[float, bytes | None]]" = queue.Queue()
    first_byte: list[float] = []
    stderr_buf: list[bytes] = []

    def reader():
        assert proc.stdout is not None
        buf = b""
        while True:
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                break
            if not first_byte:
                first_byte.append(time.monotonic())
            buf += chunk
            while b"\n" in buf:
                ln, buf = buf.split(b"\n", 1)
                lines.put((time.monotonic(), ln))
        if buf:
            lines.put((time.monotonic(), buf))
        lines.put((time.monotonic(), None))

    def err_reader():
        assert proc.stderr is not None
        stderr_buf.append(proc.stderr.read())

    threading.Thread(target=reader, daemon=True).start()
    err_thread = threading.Thread(target=err_reader, daemon=True)
    err_thread.start()
    if net and opts.vmm == "qvm" and not rss_file:
        # `ip netns exec` execs the VMM: proc.pid is qvm itself.
        net.status_probe = lambda: os.kill(proc.pid, signal.SIGUSR1)

    stdin_lock = threading.Lock()

    def send_serial(token: str) -> None:
        with stdin_lock:
            try:
                if proc.stdin:
                    proc.stdin.write(token.encode() + b"\n")
                    proc.stdin.flush()
            except (BrokenPipeError, ValueError):
                pass

    out_lines: list[str] = []
    timed_out = False
    killed = False
    run_ds = machine.device_sets.get(opts.devices) if opts.devices else None
    banners = 0
    restarted = False
    deadline = t0 + opts.timeout
    eof = False
    while not eof:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            timed_out = True
            break
        try:
            _, ln = lines.get(timeout=min(remaining, 0.5))
        except queue.Empty:
            continue
        if ln is None:
            eof = True
            break
        text = ln.decode("utf-8", "replace").rstrip("\r")
        out_lines.append(text)
        if opts.verbose:
            print("  | " + text, flush=True)
        if on_line:
            on_line(text)
        if run_ds and run_ds.restarts and "qvm-test-guest starting" in text and not killed:
            banners += 1
            if banners == 2:  # the guest booted again in the same VMM: the restart happened
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                    killed = restarted = True
                except ProcessLookupError:
                    pass
        if text.startswith("TEST ") and not killed:
            f = text.split(" ", 3)
            if len(f) >= 3 and f[1] in KILL_TESTS and f[2] == "PENDING" and f[1] in opts.tests:
                # the guest flushed and keeps writing: kill -9 the VMM now (whole process group)
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                    killed = True
                except ProcessLookupError:
                    pass
        if text.startswith("INPUT "):
            f = text.split()
            if len(f) >= 3 and host and host.input(f[1], f[2]):
                pass
            elif len(f) >= 3 and net and net.input(f[1], f[2], send_serial):
                pass
            elif len(f) >= 3 and proc.stdin:
                try:
                    proc.stdin.write(f[2].encode() + b"\n")
                    proc.stdin.flush()
                except BrokenPipeError:
                    pass
    if timed_out:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    rusage = None
    try:
        _, status, rusage = os.wait4(proc.pid, 0)
        rc = os.waitstatus_to_exitcode(status)
        proc.returncode = rc
    except ChildProcessError:
        rc = proc.wait()
    t_exit = time.monotonic()
    peak_rss = None
    if rss_file:
        try:
            with open(rss_file) as f:
                lines = [ln.strip() for ln in f if ln.strip()]
            os.unlink(rss_file)
        except OSError:
            lines = []
        if lines and lines[-1].isdigit():
            peak_rss = int(lines[-1])
        m = re.search(r"terminated by signal (\d+)", " ".join(lines))
        if m and rc is not None and rc >= 128:   # time(1) exits 128+N when the VMM died of signal N
            rc = -int(m.group(1))
            proc.returncode = rc
    if proc.stdin:
        try:
            proc.stdin.close()
        except BrokenPipeError:
            pass
    output = "\n".join(out_lines)
    if restarted and rc == -signal.SIGKILL:
        kind, value = ("restarted", None)
    elif killed and rc == -signal.SIGKILL:
        kind, value = ("killed", rc)
    elif rc is not None and rc < 0:
        kind, value = ("error", rc)
    else:
        kind, value = machine.decode_exit(rc)
    ds = machine.device_sets.get(opts.devices) if opts.devices else None
    wd_kinds = (ds.watchdog_kinds if ds and ds.watchdog_kinds else None) or machine.watchdog_kinds()
    ok, results, problems, bench = evaluate(output, opts.tests, kind, value, timed_out, wd_kinds)
    err_thread.join(5)
    err = b"".join(stderr_buf).decode("utf-8", "replace").strip()
    if host:
        host.check(results)
    if net:
        net.check(results)
        net.check_status(err, results)
    if host or net:
        ok = ok and all(r.verdict == "PASS" for r in results)
    if not ok and err:
        problems.append("VMM stderr: " + err[-2000:])
    return RunResult(ok, results, problems, bench, kind, value, rc, timed_out,
                     (first_byte[0] - t0) if first_byte else None, t_exit - t0,
                     peak_rss, output, argv)


def report(res: RunResult, label: str, stream=sys.stdout) -> None:
    for r in res.tests:
        print(f"{label}: {r.name:<12} {r.verdict:<7} {r.detail}", file=stream)
    for name, (v, unit) in sorted(res.bench.items()):
        print(f"{label}: BENCH {name} {v:g} {unit}", file=stream)
    for p in res.problems:
        print(f"{label}: PROBLEM {p}", file=stream)
    exit_desc = f"{res.exit_kind} {res.exit_value}" if res.exit_value is not None else res.exit_kind
    print(f"{label}: {'PASS' if res.ok else 'FAIL'} (exit: {exit_desc}, rc {res.returncode}, "
          f"{res.t_exit or 0:.2f} s)", file=stream)
    if not res.ok:
        print(f"{label}: command: {' '.join(res.argv)}", file=stream)
        if res.output:
            print(f"{label}: console output:\n" + "\n".join("  | " + l for l in res.output.splitlines()),
                  file=stream)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vmm", choices=sorted(MACHINES), required=True)
    ap.add_argument("--guest", required=True, help="path to qvm-test-guest.elf")
    ap.add_argument("--group", choices=sorted(GROUPS), help="predefined test group (one VM boot)")
    ap.add_argument("--tests", help="comma list of tests (instead of --group)")
    ap.add_argument("--bench", help="comma list of benchmarks")
    ap.add_argument("--cpus", type=int)
    ap.add_argument("--mem", type=int, default=128, help="RAM in MiB")
    ap.add_argument("--expect", action="append", default=[], metavar="KEY=VALUE",
                    help="override an expectation the guest checks (e.g. cpus=3 to see it fail)")
    ap.add_argument("--timeout", type=float, default=60.0)
    ap.add_argument("--qemu", help="QEMU binary (default qemu-system-x86_64 on PATH)")
    ap.add_argument("--qvm", help="qvm binary")
    ap.add_argument("--qvm-config", help=".qvmconf to use instead of tests/guest/configs/kit*.qvmconf")
    ap.add_argument("--devices", help="device set of the machine (default: the group's)")
    ap.add_argument("--disk-dir", help="directory for the virtio disk files (e.g. /dev/shm)")
    ap.add_argument("--disk-mib", type=int, help="size of the read-write virtio disk (default 8)")
    ap.add_argument("--qemu-drive", default="cache=writeback",
                    help="QEMU -drive options of the read-write disk (default cache=writeback)")
    ap.add_argument("--json", help="write the result as JSON here")
    ap.add_argument("-v", "--verbose", action="store_true", help="echo the guest console")
    a = ap.parse_args(argv)

    group = GROUPS.get(a.group, {}) if a.group else {}
    devices = a.devices or group.get("devices")
    tests = a.tests.split(",") if a.tests else list(group.get("tests", []))
    bench = a.bench.split(",") if a.bench else list(group.get("bench", []))
    machine = MACHINES[a.vmm]
    ds = machine.device_sets.get(devices) if devices else None
    if ds and not a.tests:
        # the machine's device set decides which of the group's tests run on it
        left = [t for t in tests if not machine.offers(t, devices)]
        tests = [t for t in tests if machine.offers(t, devices)]
        if left:
            print(f"{a.vmm}/{a.group}: not in the {a.vmm} device set {devices!r}: {','.join(left)}")
    if ds and not a.bench:
        bench = [b for b in bench if b in ds.bench]
    if not tests and not bench:
        ap.error("give --group or --tests/--bench (nothing of this group runs on this machine)")
    expect = {}
    for kv in a.expect:
        k, _, v = kv.partition("=")
        expect[k] = v
    opts = RunOptions(vmm=a.vmm, guest=a.guest, tests=tests, bench=bench,
                      cpus=a.cpus or group.get("cpus", 1), mem_mib=a.mem, expect=expect,
                      timeout=a.timeout, qemu=a.qemu, qvm=a.qvm, qvm_config=a.qvm_config,
                      verbose=a.verbose, devices=devices, disk_dir=a.disk_dir, disk_mib=a.disk_mib,
                      qemu_drive=a.qemu_drive)
    res = run(opts)
    report(res, f"{a.vmm}/{a.group or 'custom'}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(dataclasses.asdict(res), f, indent=1)
    return 0 if res.ok else 1


if __name__ == "__main__":
    sys.exit(main())
