#!/usr/bin/env python3
"""Guest-to-guest and restart tests of qvm's virtio-net (Python 3 standard library only).

Two qvm processes boot the test guest (systems kitA and kitB), each with one virtio-net whose
`peer` is the other's endpoint (`name net0 peer /run/qvm/<other>/net0`): a Unix-socket peer link,
no host network stack involved. Guest B runs `virtio_net_responder` (answers ARP, ICMP echo and
UDP echo), guest A the normal net tests or `virtio_net_pinger` (one exchange per serial
"round K"). Modes:

  pair          both start orders (B first / A first), MMIO and PCI, a short exchange each
  restart -n N  A stays up as the pinger; B is stopped and started N times (stop cycles through:
                guest exit on serial "stop", SIGQUIT = power cut, SIGKILL = stale socket left);
                after every start A must exchange with B again. A's /proc/PID/fd count after each
                round must equal the one after round 1; B's endpoint must be gone after every
                clean stop; at the end no socket is left in the runtime directory
  tap-restart -n N
                one guest restarted N times on the same pre-existing TAP in a private netns
                (ARP/ICMP/UDP with the host's stack each time; the TAP must survive), then 3 runs
                on a TAP qvm creates itself (it must be gone after each exit)

Runtime directory: qvm uses /run/qvm when root, else $XDG_RUNTIME_DIR/qvm. So that parallel runs
never share endpoints, each run gets a private directory: as root every qvm runs in its own mount
namespace (`unshare -m`) with that directory bind-mounted on /run/qvm (created empty if missing;
left in place); otherwise XDG_RUNTIME_DIR points at it. The directory is removed at the end.

  pair.py --qvm build/src/app/qvm --guest build/tests/guest/qvm-test-guest.elf pair
  pair.py --qvm ... --guest ... restart -n 20
  pair.py --qvm ... --guest ... tap-restart -n 20          (root: netns + TAP)
See docs/testing.md ("virtio-net guest to guest").
"""

from __future__ import annotations

import argparse
import os
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
CONFIGS = os.path.join(os.path.dirname(HERE), "configs")
sys.path.insert(0, HERE)
import qvmtest  # noqa: E402

MAC = {"kitA": "52:54:00:aa:00:01", "kitB": "52:54:00:bb:00:02"}
IP = {"kitA": "10.78.0.1", "kitB": "10.78.0.2"}
OTHER = {"kitA": "kitB", "kitB": "kitA"}
UDP_PORT = 7777


def log(msg: str) -> None:
    print(msg, flush=True)


class Vm:
    """One qvm process: serial on stdin/stdout (stderr merged), lines collected by a thread."""

    def __init__(self, label: str, argv: list[str], env: dict[str, str], verbose: bool = False):
        self.label, self.argv, self.verbose = label, argv, verbose
        self.lines: list[str] = []
        self.cond = threading.Condition()
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, env=env, start_new_session=True)
        self.pid = self.proc.pid
        self.rc: int | None = None
        self._thr = threading.Thread(target=self._reader, daemon=True)
        self._thr.start()

    def _reader(self):
        buf = b""
        while True:
            chunk = self.proc.stdout.read1(4096) if self.proc.stdout else b""
            if not chunk:
                break
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                text = line.decode(errors="replace").rstrip("\r")
                if self.verbose:
                    print(f"  [{self.label} {time.monotonic() - self.t0:6.3f}] {text}", flush=True)
                with self.cond:
                    self.lines.append(text)
                    self.cond.notify_all()
        with self.cond:
            if buf:
                self.lines.append(buf.decode(errors="replace"))
            self.lines.append("\0EOF")
            self.cond.notify_all()

    def wait_line(self, pattern: str, timeout: float, start: int = 0) -> tuple[re.Match | None, int]:
        """First line at index >= start matching pattern: (match, index after it)."""
        rx = re.compile(pattern)
        end = time.monotonic() + timeout
        i = start
        with self.cond:
            while True:
                while i < len(self.lines):
                    ln = self.lines[i]
                    i += 1
                    if ln == "\0EOF":
                        return None, i - 1
                    m = rx.search(ln)
                    if m:
                        return m, i
                left = end - time.monotonic()
                if left <= 0:
                    return None, i
                self.cond.wait(left)

    def send(self, text: str) -> None:
        try:
            self.proc.stdin.write(text.encode() + b"\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError, AttributeError):
            pass

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def fd_targets(self) -> list[str]:
        out = []
        for fd in sorted(os.listdir(f"/proc/{self.pid}/fd"), key=int):
            try:
                out.append(f"{fd}->{os.readlink(f'/proc/{self.pid}/fd/{fd}')}")
            except OSError:
                pass
        return out

    def signal(self, sig: int) -> None:
        if self.proc.poll() is None:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def wait(self, timeout: float) -> int | None:
        try:
            self.rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        self._thr.join(2)
        return self.rc

    def kill(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.wait(5)

    def text(self) -> str:
        with self.cond:
            return "\n".join(l for l in self.lines if l != "\0EOF")

    def results(self) -> dict[str, tuple[str, str]]:
        r = {}
        for ln in self.text().splitlines():
            f = ln.split(" ", 3)
            if len(f) >= 3 and f[0] == "TEST" and f[2] in ("PASS", "FAIL", "PENDING"):
                r[f[1]] = (f[2], f[3] if len(f) > 3 else "")
        return r


class PairEnv:
    """Private runtime directory, generated configs, and how to start qvm."""

    def __init__(self, qvm: str, guest: str, verbose: bool):
        self.qvm, self.guest, self.verbose = qvm, guest, verbose
        self.dir = tempfile.mkdtemp(prefix="qvmpair-")
        self.priv = os.path.join(self.dir, "run")
        os.mkdir(self.priv, 0o700)
        self.root = os.geteuid() == 0
        if self.root:
            os.makedirs("/run/qvm", 0o755, exist_ok=True)   # mount point only; stays empty
            self.runtime = self.priv
        else:
            self.runtime = os.path.join(self.priv, "qvm")
        self.vms: list[Vm] = []

    def endpoint(self, system: str) -> str:
        return os.path.join(self.runtime, system, "net0")

    def config(self, system: str, transport: str) -> str:
        base = open(os.path.join(CONFIGS, "kit.qvmconf")).read()
        base = re.sub(r"(?m)^system kit$", f"system {system}", base)
        loc = "loc 0xd0004000 intr myioapic:11 " if transport == "mmio" else ""
        base += (f"vdev virtio-net {loc}name net0 peer /run/qvm/{OTHER[system]}/net0 "
                 f"mac {MAC[system]}\n")
        path = os.path.join(self.dir, f"{system}-{transport}.qvmconf")
        with open(path, "w") as f:
            f.write(base)
        return path

    def cmdline(self, system: str, tests: str, extra: dict[str, str]) -> str:
        facts = {"tests": tests} if tests else {}
        facts.update({"vnet": "1", "vnet_mac": MAC[system], "vnet_ip": IP[system] + "/24",
                 "vnet_peer": IP[OTHER[system]], "vnet_udp_port": str(UDP_PORT), "vnet_ping_in": "0"})
        facts.update(extra)
        return " ".join(f"{k}={v}" for k, v in facts.items())

    def start(self, system: str, transport: str, tests: str, **extra: str) -> Vm:
        argv = [self.qvm, "@" + self.config(system, transport), "cmdline", self.cmdline(system, tests, extra)]
        env = dict(os.environ, QVM_TEST_GUEST=self.guest)
        if self.root:
            argv = ["unshare", "-m", "--propagation", "private", "sh", "-c",
                    'mount --bind "$0" /run/qvm && exec "$@"', self.priv] + argv
        else:
            env["XDG_RUNTIME_DIR"] = self.priv
        vm = Vm(f"{system}/{transport}", argv, env, self.verbose)
        self.vms.append(vm)
        return vm

    def sockets(self) -> list[str]:
        out = []
        for d, _, files in os.walk(self.runtime):
            for f in files:
                p = os.path.join(d, f)
                try:
                    if stat.S_ISSOCK(os.lstat(p).st_mode):
                        out.append(os.path.relpath(p, self.runtime))
                except OSError:
                    pass
        return out

    def close(self):
        for vm in self.vms:
            vm.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


def stop_vm(vm: Vm, how: str, timeout: float = 10, test: str = "virtio_net_responder") -> str | None:
    """Stop a qvm running the responder (or the pinger): 'stop' (serial "stop"/"end" -> the guest
    passes and exits, 32), 'quit' (SIGQUIT -> exit 3), 'kill' (SIGKILL). None if it exited as
    expected, else the problem."""
    want = {"stop": 32, "quit": 3, "kill": -signal.SIGKILL}[how]
    if how == "stop":
        vm.send("stop" if test == "virtio_net_responder" else "end")
    elif how == "quit":
        vm.signal(signal.SIGQUIT)
    else:
        vm.signal(signal.SIGKILL)
    rc = vm.wait(timeout)
    if rc is None:
        vm.kill()
        return f"{vm.label} did not exit within {timeout} s after '{how}'"
    if rc != want:
        return f"{vm.label} exit code {rc} after '{how}', expected {want}"
    if how == "stop":
        r = vm.results().get(test)
        if not r or r[0] != "PASS":
            return f"{vm.label}: {test} {r}"
    return None


# ---- pair: both start orders ----------------------------------------------------------------
A_TESTS = ["virtio_net", "virtio_net_arp_icmp", "virtio_net_udp"]


def pair_case(env: PairEnv, first: str, ta: str, tb: str) -> list[str]:
    problems = []
    t0 = time.monotonic()

    def start_a():
        return env.start("kitA", ta, ",".join(A_TESTS), vnet_link_ms="10000")

    def start_b():
        return env.start("kitB", tb, "virtio_net_responder", vnet_resp_ms="30000")

    if first == "B":
        b = start_b()
        if not b.wait_line(r"^NET ready", 10)[0]:
            return [f"B did not get ready: {b.text()[-400:]}"]
        a = start_a()
    else:
        a = start_a()
        a.wait_line(r".", 10)           # A's first console line: it is booting
        time.sleep(0.3)                 # A is up and waiting for its link
        b = start_b()
        if not b.wait_line(r"^NET ready", 10)[0]:
            problems.append(f"B did not get ready: {b.text()[-400:]}")
    rc = a.wait(40)
    if rc is None:
        a.kill()
        problems.append("A did not finish within 40 s")
    elif rc != 32:
        problems.append(f"A exit code {rc}, expected 32 (pass)")
    res = a.results()
    for t in A_TESTS:
        v = res.get(t)
        if not v or v[0] != "PASS":
            problems.append(f"A {t}: {v[0] + ' ' + v[1] if v else 'MISSING'}")
    p = stop_vm(b, "stop")
    if p:
        problems.append(p)
    rb = b.results().get("virtio_net_responder", ("", ""))[1]
    m = re.search(r"icmp_answered=(\d+) udp_echoed=(\d+)", rb)
    if not m or int(m.group(1)) < 5 or int(m.group(2)) < 8:
        problems.append(f"B answered too little: {rb}")
    left = env.sockets()
    if left:
        problems.append(f"sockets left after both exited cleanly: {left}")
    dt = time.monotonic() - t0
    log(f"{'ok  ' if not problems else 'FAIL'} pair {first} first, A {ta}, B {tb}: {dt:.2f} s; "
        f"A: {res.get('virtio_net_udp', ('', ''))[1][:90]}; B: {rb[:90]}")
    for p in problems:
        log(f"     {p}")
    if problems and not env.verbose:
        log("     A output:\n" + a.text()[-1500:] + "\n     B output:\n" + b.text()[-1500:])
    return problems


def mode_pair(args) -> int:
    env = PairEnv(args.qvm, args.guest, args.verbose)
    try:
        probs = []
        for first, ta, tb in [("B", "mmio", "mmio"), ("A", "mmio", "mmio"), ("B", "pci", "pci"),
                              ("A", "pci", "mmio")]:
            probs += pair_case(env, first, ta, tb)
    finally:
        env.close()
    log("PASS" if not probs else f"FAIL ({len(probs)} problems)")
    return 0 if not probs else 1


# ---- restart: B stopped and started N times, A keeps its link ----------------------------------
def mode_restart(args) -> int:
    env = PairEnv(args.qvm, args.guest, args.verbose)
    problems: list[str] = []
    hows = ["stop", "quit", "kill"]
    t_start = time.monotonic()
    times = []
    try:
        a = env.start("kitA", args.transport, "virtio_net_pinger", vnet_round_ms=str(args.round_ms),
                      vnet_idle_ms="120000")
        if not a.wait_line(r"^NET pinger", 10)[0]:
            log(f"FAIL A did not start the pinger:\n{a.text()[-1500:]}")
            return 1
        time.sleep(0.1)
        fd_base = fd_down_base = None
        fd_targets_base: list[str] = []
        fd_max = fd_down_max = 0
        a_pos = 0
        ok_rounds = 0
        for i in range(1, args.n + 1):
            how = hows[(i - 1) % len(hows)]
            tb = args.transport if not args.mixed else ("pci" if args.transport == "mmio" else "mmio")
            t0 = time.monotonic()
            b = env.start("kitB", tb, "virtio_net_responder", vnet_resp_ms="60000")
            if not b.wait_line(r"^NET ready", 10)[0]:
                problems.append(f"round {i}: B did not get ready: {b.text()[-300:]}")
                b.kill()
                break
            t_ready = time.monotonic()
            a.send(f"round {i}")
            m, a_pos = a.wait_line(rf"^ROUND {i} (ok|fail)(.*)", args.round_ms / 1000 + 10, a_pos)
            t_round = time.monotonic()
            if not m:
                problems.append(f"round {i}: no ROUND line from A")
                b.kill()
                break
            if m.group(1) != "ok":
                problems.append(f"round {i}: A: {m.group(0)}")
            else:
                ok_rounds += 1
            n_fd = a.fds()
            fd_max = max(fd_max, n_fd)
            if fd_base is None:
                fd_base, fd_targets_base = n_fd, a.fd_targets()
            p = stop_vm(b, how)
            if p:
                problems.append(f"round {i}: {p}")
            ep = env.endpoint("kitB")
            if how != "kill" and os.path.lexists(ep):
                problems.append(f"round {i}: B's endpoint {ep} still exists after a clean stop ({how})")
            time.sleep(0.02)
            n_down = a.fds()
            if fd_down_base is None:
                fd_down_base = n_down
            fd_down_max = max(fd_down_max, n_down)
            times.append((t_ready - t0, t_round - t_ready))
            log(f"round {i:3d}: {m.group(1) if m else '-'} B {how:4s}  boot->ready {1000 * (t_ready - t0):4.0f} ms, "
                f"exchange {1000 * (t_round - t_ready):5.0f} ms  ({(m.group(2) if m else '').strip()})  "
                f"A fds up {n_fd} down {n_down}")
        a.send("end")
        rc = a.wait(15)
        fd_end = None
        if rc is None:
            problems.append("A did not exit after 'end'")
            fd_end = a.fds()
            a.kill()
        elif rc != 32:
            problems.append(f"A exit code {rc}, expected 32; {a.results().get('virtio_net_pinger')}")
        # fd accounting: compare A's count at the same phase (link up after the round) over all rounds
        if fd_base is not None and fd_max != fd_base:
            problems.append(f"A's fd count with the link up varied: first round {fd_base}, max {fd_max} "
                            f"(first: {fd_targets_base})")
        left = env.sockets()
        if args.n and hows[(args.n - 1) % len(hows)] == "kill":
            left = [x for x in left if x != "kitB/net0"]   # B's last stop was SIGKILL: stale, allowed
        if left:
            problems.append(f"sockets left in the runtime directory after all exits: {left}")
        if fd_down_base is not None and fd_down_max != fd_down_base:
            problems.append(f"A's fd count with B down varied: first {fd_down_base}, max {fd_down_max}")
    finally:
        env.close()
    total = time.monotonic() - t_start
    if times:
        boots = sorted(t[0] for t in times)
        exch = sorted(t[1] for t in times)
        log(f"{ok_rounds}/{args.n} rounds ok in {total:.1f} s; B start->ready median {1000 * boots[len(boots) // 2]:.0f} ms, "
            f"A exchange median {1000 * exch[len(exch) // 2]:.0f} ms max {1000 * exch[-1]:.0f} ms; "
            f"A fds with link up: {fd_base} (max {fd_max}), with B down: {fd_down_base}")
    for p in problems:
        log(f"  problem: {p}")
    log("PASS" if not problems and ok_rounds == args.n else "FAIL")
    return 0 if not problems and ok_rounds == args.n else 1


# ---- tap-restart: one guest on the same TAP, restarted N times --------------------------------
def ns_links(ns: str) -> list[str]:
    r = subprocess.run(["ip", "-n", ns, "-o", "link", "show"], capture_output=True, text=True)
    return sorted(re.findall(r"^\d+: ([^:@]+)", r.stdout, re.M))


def mode_tap_restart(args) -> int:
    devset = qvmtest.DeviceSet(tests=set(), cmdline=[], net=True, host=False)
    net = qvmtest.NetHost(devset, pings=0)
    problems: list[str] = []
    conf = os.path.join(CONFIGS, "kit-virtio-net.qvmconf" if args.transport == "mmio" else "kit-virtio-pci-net.qvmconf")
    hows = ["stop", "quit", "kill"]
    t_start = time.monotonic()
    ok = 0
    try:
        links0 = ns_links(net.ns)
        facts = dict(net.facts(), vnet_ping_in="0", vnet_idle_ms="20000")
        cmd = "tests=virtio_net_arp_icmp,virtio_net_pinger " + " ".join(
            f"{k}={v}" for k, v in facts.items())
        env = dict(os.environ, QVM_TEST_GUEST=args.guest, **net.env())
        for i in range(1, args.n + 1):
            how = hows[(i - 1) % len(hows)]
            t0 = time.monotonic()
            vm = Vm(f"tap{i}", net.wrap([args.qvm, "@" + conf, "cmdline", cmd]), env, args.verbose)
            m, pos = vm.wait_line(r"^NET pinger", 20)
            if m:
                vm.send("round 1")
                m, _ = vm.wait_line(r"^ROUND 1 ok", 10, pos)
            res = vm.results()
            bad = [f"{t}: {res.get(t)}" for t in ("virtio_net_arp_icmp",) if not res.get(t) or res[t][0] != "PASS"]
            if not m or bad:
                problems.append(f"run {i}: {'; '.join(bad) or 'no ROUND 1 ok (ARP + ICMP + UDP echo with the host)'}"
                                f"\n{vm.text()[-800:]}")
            p = stop_vm(vm, how, test="virtio_net_pinger")
            if p:
                problems.append(f"run {i}: {p}")
            links = ns_links(net.ns)
            if links != links0:
                problems.append(f"run {i}: links in the namespace {links}, expected {links0} (pre-existing TAP "
                                f"must stay, nothing else may appear)")
            good = m and not bad and not p and links == links0
            ok += bool(good)
            log(f"run {i:3d}: {'ok' if good else 'FAIL'} stop {how:4s} {1000 * (time.monotonic() - t0):5.0f} ms  links {links}")
        # a TAP qvm creates itself: it must disappear when qvm exits (any way)
        rnd = int(time.time() * 1000) % 200 + 20
        host_ip, guest_ip = f"10.79.{rnd}.1", f"10.79.{rnd}.2"
        cfacts = dict(net.facts(), vnet_ping_in="0", vnet_ip=f"{guest_ip}/24", vnet_peer=host_ip, vnet_idle_ms="20000")
        ccmd = "tests=virtio_net_arp_icmp,virtio_net_pinger " + " ".join(f"{k}={v}" for k, v in cfacts.items())
        cenv = dict(env, QVM_TEST_TAP="qvmnew0")
        for j, how in enumerate(hows, 1):
            vm = Vm(f"newtap{j}", net.wrap([args.qvm, "@" + conf, "cmdline", ccmd]), cenv, args.verbose)
            end = time.monotonic() + 5
            while "qvmnew0" not in ns_links(net.ns) and time.monotonic() < end:
                time.sleep(0.02)
            r = subprocess.run(["ip", "-n", net.ns, "addr", "add", f"{host_ip}/24", "dev", "qvmnew0"],
                               capture_output=True, text=True)
            m, _ = vm.wait_line(r"^NET pinger", 20)
            res = vm.results().get("virtio_net_arp_icmp")
            prob = []
            if r.returncode:
                prob.append(f"qvm did not create qvmnew0: {r.stderr.strip()}")
            if not m or not res or res[0] != "PASS":
                prob.append(f"virtio_net_arp_icmp on the created TAP: {res}")
            p = stop_vm(vm, how, test="virtio_net_pinger") if how != "stop" else None
            if how == "stop":   # the pinger has no round here: "end" after 0 rounds fails the test
                vm.send("end")
                rc = vm.wait(10)
                if rc is None:
                    vm.kill()
                    p = "did not exit after 'end'"
            if p:
                prob.append(p)
            end = time.monotonic() + 2
            while "qvmnew0" in ns_links(net.ns) and time.monotonic() < end:
                time.sleep(0.02)
            links = ns_links(net.ns)
            if links != links0:
                prob.append(f"links after exit {links}, expected {links0} (a TAP qvm created must go)")
            log(f"created-TAP run {j}: {'ok' if not prob else 'FAIL'} stop {how:4s} links after exit {links}")
            problems += [f"created-TAP run {j}: {x}" for x in prob]
            if prob and not args.verbose:
                log(vm.text()[-800:])
    finally:
        net.close()
    log(f"{ok}/{args.n} runs on the pre-existing TAP ok in {time.monotonic() - t_start:.1f} s")
    for p in problems:
        log(f"  problem: {p}")
    log("PASS" if not problems else "FAIL")
    return 0 if not problems else 1


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--qvm", required=True)
    ap.add_argument("--guest", required=True)
    ap.add_argument("-v", "--verbose", action="store_true")
    sub = ap.add_subparsers(dest="mode", required=True)
    sub.add_parser("pair")
    r = sub.add_parser("restart")
    r.add_argument("-n", type=int, default=20)
    r.add_argument("--transport", choices=["mmio", "pci"], default="mmio")
    r.add_argument("--mixed", action="store_true", help="B on the other transport")
    r.add_argument("--round-ms", type=int, default=5000)
    t = sub.add_parser("tap-restart")
    t.add_argument("-n", type=int, default=20)
    t.add_argument("--transport", choices=["mmio", "pci"], default="mmio")
    args = ap.parse_args(argv)
    for p in (args.qvm, args.guest):
        if not os.path.exists(p):
            log(f"FAIL: {p} does not exist")
            return 1
    return {"pair": mode_pair, "restart": mode_restart, "tap-restart": mode_tap_restart}[args.mode](args)


if __name__ == "__main__":
    sys.exit(main())
