#!/usr/bin/env python3
"""Shared memory between two VMs: qvm's `vdev shmem` against QEMU's ivshmem-doorbell.

Two VMs boot the test guest's bench `shmem_pingpong` (tests/guest/src/tests/shmem.c): one
answers every interrupt from its handler with a notification back (pong), the other sends
--rounds notifications, each after the previous answer, and reports the round trip's median and
p99, then the copy bandwidth into and out of the shared memory. Rounds interleave the VMMs
(qvm, QEMU, qvm, ...); the table shows medians over rounds and qvm/QEMU ratios. Not a pass/fail
test; record results in docs/performance.md.

  qvm:  configs/kit-shmem.qvmconf, PCI factory; the guest enables MSI-X (an irqfd on a KVM MSI
        route); with --intx also a column with INTA# (level, irqfd + resample eventfd: what the
        QNX drivers use)
  QEMU: -M q35 -enable-kvm, -device ivshmem-doorbell,vectors=1 (MSI-X through KVM irqfds, the
        doorbell through an ioeventfd); the ivshmem server is this script (Debian ships none):
        protocol version 0, peer ids 0 and 1, one eventfd per peer (QEMU docs/specs/ivshmem-spec)

  bench/shmem.py --qvm build-release/src/app/qvm --guest build-release/tests/guest/qvm-test-guest.elf [-n 5] [--intx]
"""

from __future__ import annotations

import argparse
import array
import os
import re
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CONFIGS = os.path.join(ROOT, "tests", "guest", "configs")
BENCH_RE = re.compile(r"BENCH (\S+) (\d+) (\S+)")


class IvshmemServer(threading.Thread):
    """The ivshmem server protocol for two peers: each connection gets version 0, its id, the
    memory fd (with id -1), the other peer's eventfd if it is there, its own eventfd; the other
    peer learns the newcomer's eventfd."""

    def __init__(self, path: str, size: int):
        super().__init__(daemon=True)
        self.path = path
        self.memfd = os.memfd_create("ivshmem-bench")
        os.ftruncate(self.memfd, size)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(4)
        self.peers: dict[int, tuple[socket.socket, int]] = {}
        self.next_id = 0

    @staticmethod
    def send(conn: socket.socket, value: int, fd: int | None = None) -> None:
        data = struct.pack("<q", value)
        if fd is None:
            conn.sendall(data)
        else:
            conn.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))])

    def run(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            pid = self.next_id
            self.next_id += 1
            efd = os.eventfd(0, os.EFD_NONBLOCK)
            self.send(conn, 0)
            self.send(conn, pid)
            self.send(conn, -1, self.memfd)
            for other, (oconn, ofd) in self.peers.items():
                self.send(conn, other, ofd)
                self.send(oconn, pid, efd)
            self.send(conn, pid, efd)
            self.peers[pid] = (conn, efd)

    def close(self) -> None:
        self.sock.close()
        for conn, efd in self.peers.values():
            conn.close()
            os.close(efd)
        os.close(self.memfd)


class Guest:
    def __init__(self, argv: list[str], env: dict[str, str]):
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, env=env)
        self.lines: list[str] = []
        self.cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for raw in self.proc.stdout:
            with self.cond:
                self.lines.append(raw.decode(errors="replace").rstrip())
                self.cond.notify_all()

    def wait_for(self, pattern: str, timeout: float) -> re.Match | None:
        rx = re.compile(pattern)
        end = time.monotonic() + timeout
        with self.cond:
            i = 0
            while True:
                while i < len(self.lines):
                    m = rx.search(self.lines[i])
                    i += 1
                    if m:
                        return m
                if self.proc.poll() is not None or time.monotonic() > end:
                    return None
                self.cond.wait(0.2)

    def send(self, text: str) -> None:
        try:
            self.proc.stdin.write(text.encode() + b"\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            pass

    def stop(self) -> None:
        self.send("end")
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def one_round(vmm: str, args, tmp: str) -> dict[str, float]:
    cmd = f"bench=shmem_pingpong shm_rounds={args.rounds}"
    env = dict(os.environ, QVM_TEST_GUEST=args.guest)
    server = None
    if vmm.startswith("qvm"):
        msix = 0 if vmm == "qvm-intx" else 1

        def argv(role: str) -> list[str]:
            return [args.qvm, "@" + os.path.join(CONFIGS, "kit-shmem.qvmconf"), "cmdline",
                    f"{cmd} shm_dev=qvm shm_msix={msix} shm_role={role} shm_tag=k"]
    else:
        sock = os.path.join(tmp, "ivshmem.sock")
        if os.path.exists(sock):
            os.unlink(sock)
        server = IvshmemServer(sock, 1 << 20)
        server.start()

        def argv(role: str) -> list[str]:
            return [args.qemu, "-M", "q35", "-enable-kvm", "-nodefaults",
                    "-no-user-config", "-display", "none", "-serial", "stdio", "-no-reboot",
                    "-device", "isa-debug-exit,iobase=0xf4,iosize=4", "-vga", "none",
                    "-chardev", f"socket,path={sock},id=iv", "-device", "ivshmem-doorbell,chardev=iv,vectors=1",
                    "-m", "128M", "-kernel", args.guest, "-append", f"{cmd} shm_dev=ivshmem shm_role={role}"]
    pong = Guest(argv("pong"), env)
    try:
        if not pong.wait_for(r"SHM bench \S+ pong", 30):
            raise RuntimeError(f"{vmm}: pong did not start:\n" + "\n".join(pong.lines[-20:]))
        ping = Guest(argv("ping"), env)
        if not ping.wait_for(r"TEST shmem_pingpong (PASS|FAIL)", 120):
            raise RuntimeError(f"{vmm}: ping did not finish:\n" + "\n".join(ping.lines[-20:]))
        ping.proc.wait(20)
        out = {}
        for ln in ping.lines:
            m = BENCH_RE.search(ln)
            if m:
                out[m.group(1)] = float(m.group(2))
        if not out:
            raise RuntimeError(f"{vmm}: no BENCH lines:\n" + "\n".join(ping.lines[-20:]))
        return out
    finally:
        pong.stop()
        if server:
            server.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--qvm", required=True)
    ap.add_argument("--qemu", default="qemu-system-x86_64")
    ap.add_argument("--guest", required=True)
    ap.add_argument("-n", "--rounds-vmm", dest="n", type=int, default=5, help="runs per VMM (interleaved)")
    ap.add_argument("--rounds", type=int, default=2000, help="notification round trips per run")
    ap.add_argument("--intx", action="store_true",
                    help="also qvm with INTA# (the QNX drivers' interrupt) instead of MSI-X")
    args = ap.parse_args()
    if not shutil.which(args.qemu):
        print(f"{args.qemu} not found", file=sys.stderr)
        return 1
    tmp = tempfile.mkdtemp(prefix="qvm-shm-bench-")
    vmms = ["qvm", "qvm-intx", "qemu"] if args.intx else ["qvm", "qemu"]
    results: dict[str, dict[str, list[float]]] = {v: {} for v in vmms}
    try:
        for i in range(args.n):
            for vmm in vmms:
                r = one_round(vmm, args, tmp)
                for k, v in r.items():
                    results[vmm].setdefault(k, []).append(v)
                print(f"run {i + 1} {vmm}: " + " ".join(f"{k}={v:.0f}" for k, v in sorted(r.items())), flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    units = {"shm_rtt_median": "ns", "shm_rtt_p99": "ns", "shm_copy_in": "MiB/s", "shm_copy_out": "MiB/s"}
    cols = vmms
    print(f"\n{'metric':<16} " + " ".join(f"{c:>10}" for c in cols) + " " +
          " ".join(f"{c + '/QEMU':>14}" for c in cols if c != "qemu") +
          f"   (medians of {args.n} runs, {args.rounds} round trips each)")
    for k, unit in units.items():
        med = {c: statistics.median(results[c].get(k, [0])) for c in cols}
        ratios = [med[c] / med["qemu"] if med["qemu"] else float("nan") for c in cols if c != "qemu"]
        print(f"{k + ' (' + unit + ')':<16} " + " ".join(f"{med[c]:>10.0f}" for c in cols) + " " +
              " ".join(f"{r:>14.2f}" for r in ratios))
    print("round trip: lower is better; copy: higher is better")
    return 0


if __name__ == "__main__":
    sys.exit(main())
