#!/usr/bin/env python3
"""Guest dumps (spec §3.13, §8.1, §8.5; docs/debugging.md), opened with Debian's GDB.

The guest test kit's `dump_wait` test calls dump_outer -> dump_middle -> dump_inner, which prints
"INFO dump_wait ready" and spins in ring 3 for a few seconds. Four runs of qvm:

  directory  kit-smp2.qvmconf (2 vCPUs) + `dump DIR`: SIGUSR2 on the marker; qvm logs the dump,
             DIR holds <system>-YYYYMMDD-hhmmss.gcore (mode 0600), the guest runs on and passes
             (exit 32); `gdb -batch qvm-test-guest.elf CORE` shows rip in dump_inner, a backtrace
             dump_inner, dump_middle, dump_outer, and one thread per vCPU.
  command    kit.qvmconf + `dump "|cat > FILE"`: the same through a pipe; FILE is a core GDB reads
             the same way.
  watchdog   kit.qvmconf + `dump DIR` + `vdev wdt-ib700 action dump,terminate`, kit test
             wdt_expire (never kicks): qvm exits with 4 and DIR holds a core whose backtrace is in
             test_wdt_expire.
  no dump    kit.qvmconf without `dump`: SIGUSR2 is logged as having no destination; the guest
             runs on and passes.

Never skips: a missing gdb, qvm, guest or core is a FAIL.

usage: dump.py --qvm QVM --guest qvm-test-guest.elf [--gdb GDB]
"""
import argparse
import os
import queue
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
CONFIGS = os.path.join(os.path.dirname(HERE), "guest", "configs")
NAME_RE = r"-\d{8}-\d{6}\.gcore$"


class Qvm:
    """A running qvm: serial console (stdout) and log (stderr) lines in one queue."""

    def __init__(self, argv, guest):
        env = dict(os.environ, QVM_TEST_GUEST=guest)
        self.lines = queue.Queue()
        self.text = []
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=env)
        self.threads = [threading.Thread(target=self._pump, args=(f,), daemon=True)
                        for f in (self.proc.stdout, self.proc.stderr)]
        for t in self.threads:
            t.start()

    def _pump(self, f):
        for raw in iter(f.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            self.text.append(line)
            self.lines.put(line)

    def wait_line(self, pattern, timeout):
        """The first line matching `pattern` (re.search) within `timeout` s, else None."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            try:
                line = self.lines.get(timeout=min(left, 0.5))
            except queue.Empty:
                if self.proc.poll() is not None and self.lines.empty():
                    return None
                continue
            m = re.search(pattern, line)
            if m:
                return m

    def wait(self, timeout):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for t in self.threads:
            t.join(2)

    def output(self):
        return "\n".join(self.text[-60:])


def system_name(config):
    with open(config) as f:
        for line in f:
            w = line.split()
            if len(w) >= 2 and w[0] == "system":
                return w[1]
    return "qvm-guest"


def gdb_check(gdb, guest, core, rip_in=None, frames=(), threads=None):
    """Problems found when GDB opens `core` with the guest's symbols: rip in function `rip_in`,
    `frames` in this order (innermost first) in the backtrace, LWP 1..`threads`."""
    if not os.path.isfile(core):
        return ["no core at " + core]
    cmd = [gdb, "-batch", "-nx", "-ex", "info registers rip", "-ex", "bt", "-ex", "info threads",
           guest, core]
    try:
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        return ["gdb failed: %s" % e]
    out = r.stdout.decode("utf-8", "replace")
    problems = []
    rip = re.search(r"^rip\s+0x([0-9a-f]+)\s+0x[0-9a-f]+\s+<(\w+)(?:\+\d+)?>", out, re.M)
    if not rip:
        problems.append("gdb shows no rip with a symbol")
    elif rip_in and rip.group(2) != rip_in:
        problems.append("rip is in %s, expected %s" % (rip.group(2), rip_in))
    # Frames in backtrace order: each wanted function on its own frame line, innermost first.
    seen = [m.group(1) for m in re.finditer(r"^#\d+\s+(?:0x[0-9a-f]+ in )?(\w+) \(", out, re.M)]
    at = 0
    for fn in frames:
        try:
            at = seen.index(fn, at) + 1
        except ValueError:
            problems.append("backtrace lacks %s after the frames before it (frames: %s)"
                            % (fn, " ".join(seen)))
            break
    if threads is not None:
        lwps = re.findall(r"^\*?\s+\d+\s+LWP (\d+)", out, re.M)
        if sorted(int(x) for x in lwps) != list(range(1, threads + 1)):
            problems.append("threads %s, expected LWP 1..%d" % (lwps, threads))
    if problems:
        problems.append("gdb output:\n" + out)
    return problems


def dump_wait_run(a, config, extra, on_marker, expect_log, ms=6000):
    """qvm with `config` + `extra` running dump_wait: `on_marker(qvm)` when the guest is in
    dump_inner, then the log line `expect_log` must come and the guest must pass (exit 32).
    Returns (problems, match of expect_log)."""
    argv = [a.qvm, "@" + config] + extra + ["cmdline", "tests=dump_wait dump_wait_ms=%d" % ms]
    q = Qvm(argv, a.guest)
    problems, m = [], None
    try:
        if not q.wait_line(r"INFO dump_wait ready", 30):
            problems.append("the guest never reached dump_inner")
        else:
            # The line reaches us while the guest's console system call may still be returning
            # (ring 0, outside dump_inner); the spin lasts seconds, so wait a moment first.
            time.sleep(0.5)
            on_marker(q)
            m = q.wait_line(expect_log, 30)
            if not m:
                problems.append("no log line matching %r" % expect_log)
            rc = q.wait(ms / 1000 + 30)
            if rc != 32:
                problems.append("exit %s, expected 32 (the guest passes after the dump)" % rc)
            if not any("TEST dump_wait PASS" in l for l in q.text):
                problems.append("dump_wait did not pass")
    finally:
        q.kill()
    if problems:
        problems.append("qvm output:\n" + q.output())
    return problems, m


def case_directory(a, d):
    config = os.path.join(CONFIGS, "kit-smp2.qvmconf")
    out = os.path.join(d, "dumps")
    os.mkdir(out, 0o700)
    problems, m = dump_wait_run(a, config, ["dump", out],
                                lambda q: q.proc.send_signal(signal.SIGUSR2),
                                r"guest dump \(SIGUSR2\): (\S+), [0-9.]+ MiB in")
    files = sorted(os.listdir(out))
    prefix = system_name(config)
    if len(files) != 1 or not re.match(re.escape(prefix) + NAME_RE, files[0]):
        return problems + ["expected one %s-YYYYMMDD-hhmmss.gcore in the dump directory, found %s"
                           % (prefix, files)]
    core = os.path.join(out, files[0])
    if m and m.group(1) != core:
        problems.append("qvm logged %s, the file is %s" % (m.group(1), core))
    st = os.stat(core)
    if stat.S_IMODE(st.st_mode) != 0o600:
        problems.append("core mode %o, expected 600" % stat.S_IMODE(st.st_mode))
    if st.st_size < 127 << 20:  # RAM 0-0xa0000 and 1M-128M, ROM 0xc0000-0xfffff
        problems.append("core of %d bytes is smaller than the guest's memory" % st.st_size)
    return problems + gdb_check(a.gdb, a.guest, core, "dump_inner",
                                ["dump_inner", "dump_middle", "dump_outer"], threads=2)


def case_command(a, d):
    piped = os.path.join(d, "piped.gcore")
    problems, _ = dump_wait_run(a, os.path.join(CONFIGS, "kit.qvmconf"),
                                ["dump", "|cat > '%s'" % piped],
                                lambda q: q.proc.send_signal(signal.SIGUSR2),
                                r"guest dump \(SIGUSR2\): dump command 'cat > ")
    return problems + gdb_check(a.gdb, a.guest, piped, "dump_inner",
                                ["dump_inner", "dump_middle", "dump_outer"], threads=1)


def case_watchdog(a, d):
    out = os.path.join(d, "wdt")
    os.mkdir(out, 0o700)
    config = os.path.join(CONFIGS, "kit.qvmconf")
    argv = [a.qvm, "@" + config, "dump", out, "vdev", "wdt-ib700", "action", "dump,terminate",
            "cmdline", "tests=wdt_expire"]
    q = Qvm(argv, a.guest)
    problems = []
    try:
        rc = q.wait(40)
        if rc != 4:
            problems.append("exit %s, expected 4 (watchdog)" % rc)
        for t in q.threads:
            t.join(5)
        if not any(re.search(r"guest dump \(watchdog wdt-ib700 expired", l) for l in q.text):
            problems.append("no guest dump logged for the watchdog")
    finally:
        q.kill()
    files = sorted(os.listdir(out))
    if len(files) != 1 or not re.match(re.escape(system_name(config)) + NAME_RE, files[0]):
        problems.append("expected one core in the dump directory, found %s" % files)
    else:
        # The vCPU spins in test_wdt_expire: rip there or in now_us, which it calls.
        problems += gdb_check(a.gdb, a.guest, os.path.join(out, files[0]), None,
                              ["test_wdt_expire", "user_main"], threads=1)
    if problems:
        problems.append("qvm output:\n" + q.output())
    return problems


def case_no_dump(a, d):
    problems, _ = dump_wait_run(a, os.path.join(CONFIGS, "kit.qvmconf"), [],
                                lambda q: q.proc.send_signal(signal.SIGUSR2),
                                r"SIGUSR2: no 'dump' configured; no guest dump written", ms=3000)
    return problems


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--qvm", required=True)
    ap.add_argument("--guest", required=True)
    ap.add_argument("--gdb", default="gdb")
    a = ap.parse_args()
    pre = []
    if not shutil.which(a.gdb):
        pre.append("gdb not found (%s): install Debian's gdb" % a.gdb)
    for p in (a.qvm, a.guest):
        if not os.path.isfile(p):
            pre.append("missing " + p)
    if not os.path.exists("/dev/kvm"):
        pre.append("no /dev/kvm")
    if pre:
        print("FAIL: " + "; ".join(pre))
        return 1
    failed = 0
    with tempfile.TemporaryDirectory(prefix="qvm-dump-") as d:
        for name, case in (("directory", case_directory), ("command", case_command),
                           ("watchdog", case_watchdog), ("no dump", case_no_dump)):
            t0 = time.monotonic()
            problems = case(a, d)
            dt = time.monotonic() - t0
            if problems:
                failed += 1
                print("FAIL: %s (%.1f s):\n  %s" % (name, dt, "\n  ".join(problems)))
            else:
                print("PASS: %s (%.1f s)" % (name, dt))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
