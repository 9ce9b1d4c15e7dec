#!/usr/bin/env python3
"""Debian's gdb against the test kit's `gdb_target` guest (tests/guest/src/tests/debug.c) under
qvm's GDB stub (`set gdb`, docs/debugging.md) or under QEMU's -gdb as the reference that proves
the script right. Three parts:

  gdb     gdb -batch on the 64-bit guest: vCPUs as threads, a breakpoint and a hardware
          breakpoint at kit functions, backtraces, an argument and a register, a watchpoint that
          fires twice (0 -> 2 -> 6), a single step over a faulting ud2 that must stop at the #UD
          handler's first instruction (isr_stubs + 96; QNX J2502869), detach.
  rsp     a raw remote-protocol client: a second connection is refused while one is attached
          (qvm), Ctrl-C (0x03) stops the running guest with SIGINT, a memory write releases the
          guest (dbg_go = 2), detach: the guest runs on and passes (counter=12 faults=1).
  i386    (qvm) started with `,paused`: GDB gets the i386 register set (`set architecture i386`),
          eip at the PVH entry, two single steps, a breakpoint in 64-bit ring-0 code.
  kill    (qvm) `k` ends qvm with exit code 3 (docs/exit-codes.md).

--scenario full runs all of it with real debug traps (QEMU TCG here; qvm in the virtual test
host's L1, tests/host/l1-scenario.sh `gdb`). --scenario pvm is what a PVM host's KVM (this
machine's kvm_pvm: no int3 intercept, no ring-3 debug traps) allows, and checks that qvm says so
instead of failing silently: breakpoints in debug registers and steps in ring 0 (the i386 part),
a ring-3 step refused with the host's reason, rsp and kill. --scenario auto picks pvm when
/sys/module/kvm_pvm exists. --break-cmd hbreak replaces int3 breakpoints where the host cannot
intercept int3 (the virtual test host: QEMU TCG's SVM does not apply the #BP intercept to INT3).

usage: gdb.py --vmm qvm|qemu --guest ELF [--qvm QVM] [--scenario full|pvm|auto]
              [--break-cmd break|hbreak] [--hosttest]
Prints PASS/FAIL per check (HOSTTEST lines with --hosttest); exits 1 if any check failed.
"""
import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
KIT_CONF = os.path.join(REPO, "tests", "guest", "configs", "kit-smp2.qvmconf")
HOSTTEST = False
failures = []


def result(name, ok, detail):
    if not ok:
        failures.append(name)
    if HOSTTEST:
        print("HOSTTEST gdb.%s %s %s" % (name, "PASS" if ok else "FAIL", detail), flush=True)
    else:
        print("%s: %s: %s" % ("PASS" if ok else "FAIL", name, detail), flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Vmm:
    """One VMM process running the kit's gdb_target test with a GDB stub on `port`."""

    def __init__(self, a, port, paused):
        self.lines = []
        self.cv = threading.Condition()
        env = dict(os.environ, QVM_TEST_GUEST=a.guest)
        if a.vmm == "qvm":
            argv = [a.qvm, "@" + KIT_CONF, "set", "gdb",
                    "tcp:127.0.0.1:%d%s" % (port, ",paused" if paused else ""),
                    "cmdline", "tests=gdb_target"]
        else:
            argv = [a.qemu, "-M", "q35", "-accel", "tcg", "-nodefaults", "-no-user-config",
                    "-display", "none", "-serial", "stdio", "-no-reboot",
                    "-device", "isa-debug-exit,iobase=0xf4,iosize=4", "-smp", "2", "-m", "128M",
                    "-kernel", a.guest, "-append", "tests=gdb_target",
                    "-gdb", "tcp:127.0.0.1:%d" % port] + (["-S"] if paused else [])
        # The guest console (stdout) and the VMM's log (stderr) are read apart, so a log line
        # never splits a console line.
        self.proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for f in (self.proc.stdout, self.proc.stderr):
            threading.Thread(target=self._read, args=(f,), daemon=True).start()

    def _read(self, f):
        for raw in f:
            with self.cv:
                self.lines.append(raw.decode(errors="replace").rstrip("\r\n"))
                self.cv.notify_all()

    def text(self):
        with self.cv:
            return "\n".join(self.lines)

    def wait_for(self, pattern, timeout):
        end = time.monotonic() + timeout
        with self.cv:
            while not any(re.search(pattern, l) for l in self.lines):
                left = end - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    return any(re.search(pattern, l) for l in self.lines)
                self.cv.wait(min(left, 0.2))
            return True

    def wait_stub(self, vmm, timeout=15):
        """The stub listens. Not probed by connecting: a connection is a GDB session (qvm's
        `,paused` would let the guest run when it ends)."""
        if vmm == "qvm":
            return self.wait_for(r"GDB stub listening on", timeout)
        time.sleep(1.0)  # QEMU listens before it runs anything
        return self.proc.poll() is None

    def finish(self, timeout):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None


def run_gdb(a, port, commands, arch_i386=False, timeout=90):
    with tempfile.NamedTemporaryFile("w", suffix=".gdb", delete=False) as f:
        f.write("set pagination off\nset confirm off\nset width 0\n")
        if arch_i386:
            f.write("set architecture i386\n")
        f.write("target remote 127.0.0.1:%d\n" % port)
        f.write("\n".join(commands) + "\n")
        path = f.name
    try:
        # One stream, in order (GDB writes a monitor command's output to stderr).
        p = subprocess.run([a.gdb, "-batch", "-nx", "-x", path, a.guest], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=timeout)
        return p.stdout
    except subprocess.TimeoutExpired as e:
        return (e.stdout or b"").decode(errors="replace") + "\n(gdb timed out)"
    finally:
        os.unlink(path)


def expect(name, out, patterns):
    """Each regex must match, in order."""
    pos = 0
    for p in patterns:
        m = re.compile(p, re.M).search(out, pos)
        if not m:
            result(name, False, "no /%s/ in gdb's output; its tail:\n%s" % (p, out[pos:][-1500:]))
            return False
        pos = m.end()
    result(name, True, "%d expectations met" % len(patterns))
    return True


class Rsp:
    """A minimal remote-protocol client (GDB manual, "Remote Protocol")."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=10)
        # As GDB does: no Nagle (an ack and the next packet would wait for a delayed ACK).
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.ask("qSupported:swbreak+;hwbreak+")  # no multiprocess: plain thread ids

    def send(self, payload):
        cs = sum(payload.encode()) & 0xff
        self.s.sendall(b"$%s#%02x" % (payload.encode(), cs))

    def reply(self, timeout=10):
        self.s.settimeout(timeout)
        while True:
            m = re.search(rb"\$([^#]*)#[0-9a-fA-F]{2}", self.buf)
            if m:
                self.buf = self.buf[m.end():]
                self.s.sendall(b"+")
                return m.group(1).decode(errors="replace")
            chunk = self.s.recv(4096)
            if not chunk:
                raise EOFError("connection closed")
            self.buf += chunk

    def ask(self, payload, timeout=10):
        self.send(payload)
        return self.reply(timeout)

    def close(self):
        self.s.close()


def symbol(a, name):
    out = subprocess.run(["nm", a.guest], capture_output=True, text=True).stdout
    m = re.search(r"^([0-9a-f]+) \w %s$" % re.escape(name), out, re.M)
    return int(m.group(1), 16) if m else None


def part_gdb(a, vmm, port, brk):
    isr = symbol(a, "isr_stubs")
    out = run_gdb(a, port, [
        "info threads",
        "%s dbg_leaf" % brk, "hbreak dbg_mid",
        "set var dbg_go = 1",
        "continue", "bt",
        "continue", "bt", "print n", "info registers rip",
        "delete", "watch dbg_counter", "continue", "continue",
        "delete", "thbreak *dbg_ud2", "continue",
        "stepi", "printf \"PC-AFTER-STEP %#lx\\n\", $pc",
        "thread 2", "info registers rip", "thread 1",
        "detach"])
    expect("gdb.breakpoints", out, [
        r"^\*? *1 +Thread (1\.)?1", r"^ *2 +Thread (1\.)?2",
        r"Breakpoint 2, dbg_mid \(n=n@entry=1\)", r"#1 .* in test_gdb_target \(\)",
        r"Breakpoint 1, dbg_leaf \(n=n@entry=2\)", r"#1 .* in dbg_mid \(n=n@entry=1\)",
        r"\$1 = 2", r"^rip +0x[0-9a-f]+ +0x[0-9a-f]+ <dbg_leaf"])
    expect("gdb.watchpoint", out, [r"[Ww]atchpoint 3: dbg_counter", r"Old value = 0",
                                   r"New value = 2", r"Old value = 2", r"New value = 6"])
    m = re.search(r"PC-AFTER-STEP (0x[0-9a-f]+)", out)
    want = isr + 16 * 6 if isr is not None else None
    got = int(m.group(1), 16) if m else None
    result("gdb.step_into_fault_handler", got is not None and got == want,
           "stepi over ud2 stopped at %s; the #UD handler starts at %s" %
           (hex(got) if got is not None else "?", hex(want) if want is not None else "?"))
    expect("gdb.detach", out, [r"\[Switching to thread 2", r"\[Switching to thread 1",
                               r"Inferior 1 \(.*\) detached"])


def part_rsp(a, vmm, port):
    if not vmm.wait_for(r"DBG spinning", 60):
        result("rsp.guest_spinning", False, "the guest never reached dbg_spin:\n" + vmm.text()[-1500:])
        return
    c = Rsp(port)
    try:
        stop = c.ask("?")
        result("rsp.attach_stops", re.match(r"[TS]05", stop) is not None, "'?' -> %s" % stop)
        if a.vmm == "qvm":
            # One client at a time: a second connection is closed at once (and logged).
            d = socket.create_connection(("127.0.0.1", port), timeout=5)
            d.settimeout(5)
            try:
                closed = d.recv(16) == b""
            except socket.timeout:
                closed = False
            d.close()
            result("rsp.second_client_refused", closed, "second connection %s" %
                   ("closed by qvm" if closed else "left open"))
            other_user(port, vmm)
        c.send("vCont;c" if a.vmm == "qvm" else "c")
        time.sleep(1.0)
        c.s.sendall(b"\x03")
        stop = c.reply(15)
        result("rsp.interrupt", re.match(r"T02", stop) is not None,
               "0x03 while running -> %s" % stop)
        go = symbol(a, "dbg_go")
        ok = c.ask("M%x,4:02000000" % go) == "OK" and c.ask("m%x,4" % go) == "02000000"
        result("rsp.memory_write", ok, "dbg_go = 2 written and read back at %#x" % go)
        # A stub that kept multiprocess ids (QEMU: "thread:p01.01") wants the process id too.
        r = c.ask("D;1" if "thread:p" in stop else "D")
        result("rsp.detach", r == "OK", "D -> %s" % r)
    except (OSError, EOFError) as e:
        result("rsp.session", False, "%s; VMM output:\n%s" % (e, vmm.text()[-1500:]))
    finally:
        c.close()
    passed = vmm.wait_for(r"TEST gdb_target PASS", 60)
    result("rsp.guest_runs_on", passed, "the guest %s after detach" %
           ("passed gdb_target" if passed else "did not pass:\n" + vmm.text()[-1500:]))


def other_user(port, vmm):
    """Another local user's connection over loopback TCP is refused (qvm finds the peer's uid
    through sock_diag; docs/security.md). Needs root to act as that user (uid 65534)."""
    if os.geteuid() != 0:
        print("note: rsp.other_user_refused needs root (to connect as uid 65534); not run", flush=True)
        return
    probe = ("import socket,sys\n"
             "s=socket.create_connection(('127.0.0.1',%d),timeout=5)\n"
             "s.settimeout(5)\n"
             "try:\n    d=s.recv(16)\nexcept socket.timeout:\n    d=b'open'\n"
             "sys.exit(0 if d==b'' else 1)\n" % port)
    # Debian's python3: the runner's own may live where uid 65534 cannot read (e.g. ~root).
    py = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
    p = subprocess.run([py, "-c", probe], user=65534, group=65534, cwd="/",
                       capture_output=True, text=True, timeout=20)
    logged = vmm.wait_for(r"GDB stub: connection refused: uid 65534 is not this user", 5)
    result("rsp.other_user_refused", p.returncode == 0 and logged,
           "uid 65534's connection %s; qvm %s it" % ("closed" if p.returncode == 0 else
                                                     "not closed " + p.stderr[-300:],
                                                     "logged" if logged else "did not log"))


def part_i386(a, port):
    # Ring 0 throughout: on a PVM host `break` here is the debug-register fallback of Z0.
    out = run_gdb(a, port, [
        "info registers eip", "monitor phys on", "x/2xb 0x%x" % symbol(a, "pvh_entry"),
        "monitor phys off", "stepi", "stepi", "info registers eip",
        "%s kernel_init" % a.break_cmd, "continue", "info registers eip", "detach"],
        arch_i386=True)
    entry = symbol(a, "pvh_entry")
    expect("i386.registers", out, [
        r"^eip +0x%x +0x%x <pvh_entry>" % (entry, entry),
        r"memory accesses use guest-physical addresses", r"<pvh_entry>:\s+0xfa\s+0xfc",
        r"^eip +0x[0-9a-f]+ +0x[0-9a-f]+ <pvh_entry\+2>",
        r"Breakpoint 1, kernel_init", r"^eip +0x[0-9a-f]+ +0x[0-9a-f]+ <kernel_init>",
        r"detached"])


def part_ring3_step_refused(a, vmm, port):
    out = run_gdb(a, port, ["set var dbg_go = 1", "stepi", "detach"])
    said = "this host's KVM is kvm_pvm" in vmm.text()
    result("pvm.limits_logged", said, "qvm %s what this host's KVM cannot trap" %
           ("logged" if said else "did not log"))
    refused = "single steps in guest user mode (ring 3) are not available on this host" in vmm.text()
    result("pvm.ring3_step_refused", refused and re.search(r"E01|error", out, re.I) is not None,
           "qvm %s the ring-3 step with the host's reason" % ("refused" if refused else "did not refuse"))


def part_kill(a):
    port = free_port()
    vmm = Vmm(a, port, paused=True)
    if not vmm.wait_stub(a.vmm):
        result("kill", False, "no stub on port %d:\n%s" % (port, vmm.text()[-1500:]))
        vmm.finish(5)
        return
    c = Rsp(port)
    c.ask("?")
    c.send("k")
    rc = vmm.finish(10)
    c.close()
    result("kill", rc == 3, "qvm exit code after k: %s (docs/exit-codes.md: 3)" % rc)


def main():
    global HOSTTEST
    ap = argparse.ArgumentParser()
    ap.add_argument("--vmm", choices=("qvm", "qemu"), required=True)
    ap.add_argument("--qvm")
    ap.add_argument("--qemu", default="qemu-system-x86_64")
    ap.add_argument("--gdb", default="gdb")
    ap.add_argument("--guest", required=True)
    ap.add_argument("--scenario", choices=("full", "pvm", "auto"), default="auto")
    ap.add_argument("--break-cmd", choices=("break", "hbreak"), default="break")
    ap.add_argument("--hosttest", action="store_true")
    a = ap.parse_args()
    HOSTTEST = a.hosttest
    for tool in (a.gdb, "nm", a.qvm if a.vmm == "qvm" else a.qemu):
        if not tool or not shutil.which(tool):
            result("tools", False, "%s not found (scripts/install-deps.sh installs gdb, binutils, qemu)" % tool)
            return 1
    scenario = a.scenario
    if scenario == "auto":
        scenario = "pvm" if os.path.exists("/sys/module/kvm_pvm") else "full"
        print("scenario %s (%s)" % (scenario, "this host's KVM is kvm_pvm" if scenario == "pvm"
                                    else "no kvm_pvm: real debug traps"), flush=True)

    port = free_port()
    vmm = Vmm(a, port, paused=False)
    try:
        if not vmm.wait_for(r"DBG waiting for the debugger", 60) or not vmm.wait_stub(a.vmm):
            result("start", False, "the guest did not reach gdb_target:\n" + vmm.text()[-2000:])
            return 1
        if scenario == "full":
            part_gdb(a, vmm, port, a.break_cmd)
        else:
            part_ring3_step_refused(a, vmm, port)
        part_rsp(a, vmm, port)
        rc = vmm.finish(30)
        want = 32 if a.vmm == "qvm" else 1  # kit status 0: qvm testdev 32+0, QEMU (0 << 1) | 1
        result("exit", rc == want, "%s exit code %s (want %d)" % (a.vmm, rc, want))
    finally:
        if vmm.proc.poll() is None:
            vmm.proc.kill()
            vmm.proc.wait()
    if a.vmm == "qvm":
        port = free_port()
        vmm = Vmm(a, port, paused=True)
        try:
            if vmm.wait_stub(a.vmm):
                part_i386(a, port)
            else:
                result("i386", False, "no stub:\n" + vmm.text()[-1500:])
        finally:
            vmm.proc.kill()
            vmm.proc.wait()
        part_kill(a)
    else:
        print("note: the i386 and kill parts are qvm's (QEMU's x86_64 stub has no i386 register "
              "set; its k exit differs)", flush=True)
    print("%s: %d failure(s)" % ("FAIL" if failures else "PASS", len(failures)), flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
