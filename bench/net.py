#!/usr/bin/env python3
"""virtio-net benchmark: qvm vs QEMU microvm, the same test guest, interleaved rounds, medians.

Scenarios (the guest kit's ring-3 polling driver, up to 16 frames in flight, one kick per batch,
no offloads, no interrupts; tests/guest/src/tests/virtio_net.c):

  g2h  guest -> host: `bench virtio_net_tx` sends UDP datagrams to the host side of a TAP in a
       private network namespace (tests/guest/runner/qvmtest.py NetHost; nothing listens on the
       port, the host stack drops them after IP input): 1472-byte payloads for vnet_bench_ms
       (MB/s of UDP payload the device completed) and 18-byte payloads (60-byte frames,
       packets/s). qvm: `peer tap:` (kit-virtio-net.qvmconf); QEMU: -netdev tap,vhost=off.
  g2s  guest -> host socket: g2h with a UDP socket bound to the sink port in the namespace that
       never reads (receive buffer 4 KiB, so the host drops at the socket instead of answering
       with ICMP port unreachable): less host work per frame, so the VMM's own share shows more.
       Not in the default set.
  h2g  host -> guest: the guest runs `bench virtio_net_rx` (sink on port 9) behind the same TAP;
       once it prints "NET sink ready" bench/udp_blast.c (compiled here with cc -O2) sends UDP
       datagrams from the namespace as fast as the host stack takes them (sendmmsg, 64 per call):
       1472-byte payloads for vnet_bench_ms, then 18-byte payloads. The guest reports what
       arrived (MB/s of payload, packets/s), first to last frame; the TAP drops what the VMM does
       not drain (its queue is 500 frames), so the rate is the VMM's receive capacity while the
       sender competes for the same 2 cores.
  g2g  guest -> guest: guest A runs `bench virtio_net_tx` towards guest B, which runs
       `bench virtio_net_rx` (counts the datagrams for it, first to last frame). qvm: two qvm
       processes with a peer link (runner/pair.py PairEnv: private runtime directory); QEMU: two
       microvms joined by `-netdev stream` over a Unix socket (B server, A client). Reported:
       A's transmit rates and B's receive rates (B's are what arrived).

  bench/net.py --qvm build/src/app/qvm --guest build/tests/guest/qvm-test-guest.elf [-n 5]
  A/B of two qvm variants in the same interleaved run: --vmms qvm,qvm-base,qemu-microvm with
  --qvm-base OTHER_QVM and/or --base-net-opts 'ioeventfd on' (appended to the virtio-net lines).
Needs root (netns, TAP). Record results in docs/performance.md.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "guest", "runner"))
sys.path.insert(0, HERE)
import qvmtest  # noqa: E402
import pair  # noqa: E402
from compare import machine_description  # noqa: E402


def parse_bench(text):
    out = {}
    for ln in text.splitlines():
        f = ln.split()
        if len(f) == 4 and f[0] == "BENCH":
            out[f"{f[1]} ({f[3]})"] = float(f[2])
    return out


SINK_SRC = """
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.bind((sys.argv[1], int(sys.argv[2])))
print("ready", flush=True)
time.sleep(600)
"""


def g2h(vmm, args, sink=False):
    _NetHostSeen.sink = sink
    opts = qvmtest.RunOptions(vmm=vmm, guest=args.guest, tests=[], bench=["virtio_net_tx"], timeout=60,
                              qemu=args.qemu, qvm=args.qvm, devices="virtio_net",
                              extra_cmdline=[f"vnet_bench_ms={args.bench_ms}", "vnet_sink_port=9"])
    try:
        res = qvmtest.run(opts)
    finally:
        _NetHostSeen.sink = False
    name = "g2s" if sink else "g2h"
    m = {f"{name} {k} ({u})": v for k, (v, u) in res.bench.items()}
    if not m:
        print(f"# {name} {vmm} failed: {'; '.join(res.problems)[:300]}", file=sys.stderr)
    elif args.verbose:
        print_guest_info(name, vmm, res.output)
    return m


def g2s(vmm, args):
    return g2h(vmm, args, sink=True)


def print_guest_info(scenario, vmm, output):
    """-v: the guest's own INFO lines (frame counts, notifications sent and left out)."""
    for ln in output.splitlines():
        if "INFO bench" in ln:
            print(f"# {scenario} {vmm}: {ln.strip()}", file=sys.stderr)


class _NetHostSeen(qvmtest.NetHost):
    """NetHost that remembers the last instance, so h2g can send from its namespace; for g2s it
    also binds the sink port in the namespace with a socket that never reads."""
    last = None
    sink = False

    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        _NetHostSeen.last = self
        self._sink = None
        if _NetHostSeen.sink:
            self._sink = subprocess.Popen(["ip", "netns", "exec", self.ns, sys.executable, "-c", SINK_SRC,
                                           self.host_ip, "9"], stdout=subprocess.PIPE)
            if b"ready" not in self._sink.stdout.readline():
                raise RuntimeError("UDP sink did not start in the namespace")

    def close(self):
        if getattr(self, "_sink", None):
            self._sink.kill()
            self._sink.wait()
            self._sink = None
        super().close()


qvmtest.NetHost = _NetHostSeen


def build_blaster():
    d = tempfile.mkdtemp(prefix="qvm-netbench-")
    exe = os.path.join(d, "udp_blast")
    subprocess.run(["cc", "-O2", "-o", exe, os.path.join(HERE, "udp_blast.c")], check=True)
    return exe


def config_wrapper(qvm, opts):
    """A shell wrapper around `qvm` that appends `opts` to the `vdev virtio-net` lines of the
    @config it is started with (the runners pass `@CONFIG cmdline ...`)."""
    d = tempfile.mkdtemp(prefix="qvm-netbench-")
    path = os.path.join(d, "qvm-opts.sh")
    with open(path, "w") as f:
        f.write("#!/bin/sh\n"
                'case "$1" in @*) c="${1#@}"; shift; t=$(mktemp "%s/cfg-XXXXXX")\n'
                "  sed 's/^\\(vdev virtio-net.*\\)$/\\1 %s/' \"$c\" > \"$t\"\n"
                '  exec "%s" "@$t" "$@";;\nesac\nexec "%s" "$@"\n' % (d, opts, qvm, qvm))
    os.chmod(path, 0o755)
    return path


def h2g(vmm, args):
    started = threading.Event()
    out = {}

    def blast():
        nh = _NetHostSeen.last
        subprocess.run(["ip", "-n", nh.ns, "neigh", "replace", nh.guest_ip, "lladdr", nh.mac, "dev", nh.tap],
                       capture_output=True)
        r = subprocess.run(["ip", "netns", "exec", nh.ns, args.blaster, nh.guest_ip, "9", str(args.bench_ms),
                            "1472", "18"], capture_output=True, text=True)
        out["sent"] = r.stdout.strip().replace("\n", ", ")

    def on_line(ln):
        if "NET sink ready" in ln and not started.is_set():
            started.set()
            threading.Thread(target=blast, daemon=True).start()

    opts = qvmtest.RunOptions(vmm=vmm, guest=args.guest, tests=[], bench=["virtio_net_rx"], timeout=60,
                              qemu=args.qemu, qvm=args.qvm, devices="virtio_net",
                              extra_cmdline=["vnet_sink_port=9"])
    res = qvmtest.run(opts, on_line=on_line)
    m = {f"h2g {k} ({u})": v for k, (v, u) in res.bench.items()}
    if not m:
        print(f"# h2g {vmm} failed: {'; '.join(res.problems)[:300]}", file=sys.stderr)
    elif args.verbose:
        print(f"# h2g {vmm}: {out.get('sent')}", file=sys.stderr)
        print_guest_info("h2g", vmm, res.output)
    return m


def qemu_argv(args, cmdline, sock, server):
    mach = qvmtest.MACHINES["qemu-microvm"]
    facts = " ".join(mach.cmdline_extra)
    return ([args.qemu, "-M", mach.machine_arg] + qvmtest.QEMU_COMMON +
            ["-global", "virtio-mmio.force-legacy=false",
             "-netdev", f"stream,id=n0,server={'on' if server else 'off'},addr.type=unix,addr.path={sock}",
             "-device", f"virtio-net-device,netdev=n0,mac={pair.MAC['kitB' if server else 'kitA']}",
             "-smp", "1", "-m", "128M", "-kernel", args.guest, "-append", f"{cmdline} {facts}"])


def g2g(vmm, args):
    env = pair.PairEnv(args.qvm, args.guest, False)
    common = {"vnet_bench_ms": str(args.bench_ms), "vnet_sink_port": "9"}
    try:
        if vmm == "qvm":
            b = env.start("kitB", "mmio", "", bench="virtio_net_rx", **common)
        else:
            sock = os.path.join(env.dir, "link.sock")
            b = pair.Vm("qemuB", qemu_argv(args, env.cmdline("kitB", "", dict(common, bench="virtio_net_rx")),
                                           sock, True), dict(os.environ), False)
            env.vms.append(b)
        if not b.wait_line(r"^NET sink ready", 15)[0]:
            print(f"# g2g {vmm}: B did not start: {b.text()[-300:]}", file=sys.stderr)
            return {}
        if vmm == "qvm":
            a = env.start("kitA", "mmio", "", bench="virtio_net_tx", **common)
        else:
            a = pair.Vm("qemuA", qemu_argv(args, env.cmdline("kitA", "", dict(common, bench="virtio_net_tx")),
                                           sock, False), dict(os.environ), False)
            env.vms.append(a)
        a.wait(60)
        b.wait(60)
        m = {}
        for k, v in parse_bench(a.text()).items():
            m[f"g2g A {k}"] = v
        for k, v in parse_bench(b.text()).items():
            m[f"g2g B {k}"] = v
        if len(m) < 4:
            print(f"# g2g {vmm}: incomplete: A {a.text()[-300:]} B {b.text()[-300:]}", file=sys.stderr)
        return m
    finally:
        env.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--guest", required=True)
    ap.add_argument("--qvm", required=True)
    ap.add_argument("--qemu", default="qemu-system-x86_64")
    ap.add_argument("-n", "--rounds", type=int, default=5)
    ap.add_argument("--bench-ms", type=int, default=500)
    ap.add_argument("--scenarios", default="g2h,h2g,g2g")
    ap.add_argument("--vmms", default="qvm,qemu-microvm",
                    help="comma list of qvm, qemu-microvm, qvm-base (= --qvm-base, for A/B runs)")
    ap.add_argument("--qvm-base", help="a second qvm binary, reported as qvm-base")
    ap.add_argument("--base-net-opts", help="options appended to every `vdev virtio-net` line of the "
                    "qvm-base runs (e.g. 'ioeventfd on'); qvm-base is --qvm unless --qvm-base is given")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()
    args.guest, args.qvm = os.path.abspath(args.guest), os.path.abspath(args.qvm)
    if args.qvm_base:
        args.qvm_base = os.path.abspath(args.qvm_base)
    if args.base_net_opts:
        args.qvm_base = config_wrapper(args.qvm_base or args.qvm, args.base_net_opts)
    scen = [s for s in args.scenarios.split(",") if s]
    vmms = args.vmms.split(",")
    if "h2g" in scen:
        args.blaster = build_blaster()
    print(f"# machine: {machine_description(args.qemu)}")
    print(f"# qvm: {args.qvm}; {args.rounds} rounds interleaved (scenario x VMM); {args.bench_ms} ms per bench")
    samples = {v: {} for v in vmms}
    for r in range(args.rounds):
        for s in scen:
            for v in vmms:
                a, vmm = args, v
                if v == "qvm-base":
                    a = argparse.Namespace(**vars(args))
                    a.qvm, vmm = args.qvm_base, "qvm"
                m = {"g2h": g2h, "g2s": g2s, "h2g": h2g, "g2g": g2g}[s](vmm, a)
                for k, x in m.items():
                    samples[v].setdefault(k, []).append(x)
                time.sleep(0.2)
    keys = []
    for v in vmms:
        keys += [k for k in samples[v] if k not in keys]
    base = "qvm-base" in vmms
    print(f"{'metric':<40} {'QEMU microvm':>13} {'qvm':>10} {'qvm/QEMU':>9}" +
          (f" {'qvm-base':>10} {'base/QEMU':>9}" if base else "") + "   (n qvm/QEMU)")

    def med(v, k):
        x = samples.get(v, {}).get(k, [])
        return (statistics.median(x) if x else float("nan")), len(x)

    for k in keys:
        (qm, nq), (sm, ns) = med("qemu-microvm", k), med("qvm", k)
        line = f"{k:<40} {qm:>13.0f} {sm:>10.0f} {sm / qm if nq and qm else float('nan'):>9.2f}"
        if base:
            bm, nb = med("qvm-base", k)
            line += f" {bm:>10.0f} {bm / qm if nq and qm else float('nan'):>9.2f}"
        print(line + f"   ({ns}/{nq})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
