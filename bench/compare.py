#!/usr/bin/env python3
"""Side-by-side benchmark: the same test guest under qvm and QEMU (-M microvm, -enable-kvm).

Runs N rounds, interleaving the VMMs (qvm, qemu, qvm, qemu, ...), and prints a table of medians
and qvm/QEMU ratios for: process start -> first serial byte, -> VMM exit, peak RSS of the VMM
process (the VMM runs under `/usr/bin/time -f %M`; the runner's own ru_maxrss of its child
would include the Python runner's pages from before exec), and every "BENCH <name> <value> <unit>" line the
guest prints (ring-3 port-I/O and MMIO round trips; virtio figures later).

Not a pass/fail test. If no qvm binary is given or it cannot run the guest yet, QEMU runs alone
and the report says so. Record results in docs/performance.md.

  bench/compare.py --guest build-guest/qvm-test-guest.elf [--qvm build/src/app/qvm] [-n 5]

--device-set blk: virtio-blk. The guest's ring-3 polling driver runs bench virtio_blk (4 KiB
random read/write at QD1 and QD32, 1 MiB sequential read/write at QD1) on the runner's "virtio"
device set: qvm with tests/guest/configs/kit-virtio.qvmconf (buffered preadv/pwritev, `threads 1`
= inline, no `dio`), QEMU microvm with -drive ...,cache=writeback (buffered, the same page-cache
semantics as qvm without `dio`),aio=io_uring and an iothread. The disk file (--disk-mib, default
64) lives in each of --disk-dirs (default /dev/shm = tmpfs, and /var/tmp = the root disk); rounds
interleave storage x VMM; medians and qvm/QEMU ratios per storage.

  bench/compare.py --device-set blk --guest ... --qvm build/src/app/qvm -n 5

--qvm-base PATH: a second qvm binary (a previous build) gets its own columns, interleaved with the
others, so a change can be compared with what came before on the same machine in one run.

--qvm-aio inline,io_uring,threads4 (blk): one qvm column per virtio-blk engine, each from a copy
of kit-virtio.qvmconf whose read-write disk gets `aio inline|threads|io_uring` (`threadsN`: aio
threads with N workers; a "+dio" suffix adds `dio enable`, O_DIRECT, to compare with QEMU's
cache=none; "+pollUSEC" adds `poll USEC`, the io_uring busy-poll window); rounds interleave every
column. Default: the config as it is.
"""

import argparse
import os
import platform
import statistics
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "guest", "runner"))
import qvmtest  # noqa: E402


def machine_description(qemu: str) -> str:
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        qv = subprocess.run([qemu, "--version"], capture_output=True, text=True, timeout=10).stdout.splitlines()[0]
    except (OSError, IndexError, subprocess.SubprocessError):
        qv = "QEMU ?"
    return f"nproc {os.cpu_count()}, CPU {model}, kernel {platform.release()}, {qv}"


def aio_config(variant: str, out_dir: str) -> str:
    """kit-virtio.qvmconf with `aio ...` on its read-write virtio-blk (the bench disk)."""
    m = re.fullmatch(r"(inline|io_uring|threads)(\d*)(\+dio)?(\+poll\d+)?", variant)
    if not m:
        raise SystemExit(f"--qvm-aio: bad variant {variant!r} (inline, io_uring, threads, threadsN; +dio; +pollUSEC)")
    extra = f" aio {m.group(1)}" + (f" threads {m.group(2)}" if m.group(2) else "")
    extra += " dio enable" if m.group(3) else ""
    extra += f" poll {m.group(4)[5:]}" if m.group(4) else ""
    with open(os.path.join(qvmtest.CONFIGS, "kit-virtio.qvmconf")) as f:
        lines = f.read().split("\n")
    for i, line in enumerate(lines):
        if line.startswith("vdev virtio-blk") and "hostdev <" not in line:
            lines[i] = line + extra
            break
    path = os.path.join(out_dir, f"kit-virtio-{variant}.qvmconf")
    with open(path, "w") as f:
        f.write("\n".join(lines))
    return path


def one(vmm, args, disk_dir=None, qvm_config=None):
    # "qvm-base": the same runs with a second qvm binary (--qvm-base, e.g. a previous build).
    binary = args.qvm_base if vmm == "qvm-base" else args.qvm
    vmm = "qvm" if vmm == "qvm-base" else vmm
    opts = qvmtest.RunOptions(vmm=vmm, guest=args.guest, tests=args.tests, bench=args.bench,
                              cpus=1, mem_mib=args.mem, timeout=args.timeout, qemu=args.qemu,
                              qvm=binary, qvm_config=qvm_config or args.qvm_config, measure_rss=True)
    if args.device_set == "blk":
        opts.devices = "virtio"
        opts.disk_dir = disk_dir
        opts.disk_mib = args.disk_mib
        opts.qemu_drive = args.qemu_drive
        if args.qemu_iothread:
            opts.qemu_extra = ["-object", "iothread,id=io0"]
            opts.qemu_blk_dev = ",iothread=io0"
        opts.extra_cmdline = [f"vblk_bench_ms={args.bench_ms}"]
    res = qvmtest.run(opts)
    m = {}
    if res.t_first_byte is not None:
        m["first serial byte (ms)"] = res.t_first_byte * 1000
    if res.t_exit is not None:
        m["exit (ms)"] = res.t_exit * 1000
    if res.peak_rss_kib:
        m["peak RSS (MiB)"] = res.peak_rss_kib / 1024
    for name, (v, unit) in res.bench.items():
        m[f"{name} ({unit})"] = v
    return res, m


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--guest", required=True)
    ap.add_argument("--qvm", help="qvm binary; omitted or unable to run guests -> QEMU only")
    ap.add_argument("--qvm-config", help="default tests/guest/configs/kit.qvmconf")
    ap.add_argument("--qemu", default="qemu-system-x86_64")
    ap.add_argument("--qvm-base", help="a second qvm binary (e.g. a previous build), its own column "
                    "qvm-base, interleaved with the others")
    ap.add_argument("-n", "--rounds", type=int, default=5)
    ap.add_argument("--mem", type=int, default=128)
    ap.add_argument("--bench", default="pio,mmio,lapic", help="guest benchmarks (bench=...)")
    ap.add_argument("--tests", default="", help="guest tests to run too (e.g. serial,timers)")
    ap.add_argument("--timeout", type=float, default=60)
    ap.add_argument("--device-set", choices=["none", "blk"], default="none",
                    help="blk: virtio-blk benches under the 'virtio' device set (see above)")
    ap.add_argument("--disk-dirs", default="/dev/shm,/var/tmp",
                    help="blk: directories for the disk file (tmpfs, disk)")
    ap.add_argument("--disk-mib", type=int, default=64)
    ap.add_argument("--bench-ms", type=int, default=500, help="blk: duration of each guest bench")
    ap.add_argument("--qemu-drive", default="cache=writeback,aio=io_uring",
                    help="blk: QEMU -drive options (default matches qvm's buffered I/O)")
    ap.add_argument("--no-qemu-iothread", dest="qemu_iothread", action="store_false",
                    help="blk: no iothread for QEMU's virtio-blk")
    ap.add_argument("--qvm-aio", default="",
                    help="blk: comma list of qvm virtio-blk engines to compare (inline,io_uring,threads4)")
    args = ap.parse_args()
    if args.device_set == "blk":
        if args.bench == "pio,mmio,lapic":
            args.bench = "virtio_blk"
        return blk_main(args)
    args.bench = [b for b in args.bench.split(",") if b]
    args.tests = [t for t in args.tests.split(",") if t]

    vmms = ["qemu-microvm"]
    note = "qvm: not given (--qvm PATH); QEMU only"
    if args.qvm:
        res, _ = one("qvm", args)
        if res.ok:
            vmms = ["qvm", "qemu-microvm"] + (["qvm-base"] if args.qvm_base else [])
            note = f"qvm: {args.qvm}" + (f"; qvm-base: {args.qvm_base}" if args.qvm_base else "")
        else:
            why = "; ".join(res.problems)[:300] or "no result"
            note = f"qvm: {args.qvm} cannot run the guest yet ({why}); QEMU only"
    print(f"# machine: {machine_description(args.qemu)}")
    print(f"# {note}")
    print(f"# guest: {args.guest} tests={','.join(args.tests) or '-'} bench={','.join(args.bench) or '-'}, "
          f"{args.rounds} rounds, interleaved")

    samples = {v: {} for v in vmms}
    failures = {v: 0 for v in vmms}
    for r in range(args.rounds):
        for v in vmms:
            res, m = one(v, args)
            if not res.ok:
                failures[v] += 1
                print(f"# round {r}: {v} run failed: {'; '.join(res.problems)[:300]}", file=sys.stderr)
            for k, x in m.items():
                samples[v].setdefault(k, []).append(x)

    keys = []
    for v in vmms:
        for k in samples[v]:
            if k not in keys:
                keys.append(k)
    hdr = f"{'metric':<32} {'QEMU microvm':>14}"
    if "qvm" in vmms:
        hdr += f" {'qvm':>14} {'qvm/QEMU':>9}"
    if "qvm-base" in vmms:
        hdr += f" {'qvm-base':>14} {'base/QEMU':>9}"
    print(hdr)
    for k in keys:
        q = samples["qemu-microvm"].get(k)
        qm = statistics.median(q) if q else None
        line = f"{k:<32} {qm if qm is not None else float('nan'):>14.1f}"
        if "qvm" in vmms:
            s = samples["qvm"].get(k)
            sm = statistics.median(s) if s else None
            ratio = (sm / qm) if (sm is not None and qm) else float("nan")
            line += f" {sm if sm is not None else float('nan'):>14.1f} {ratio:>9.2f}"
        if "qvm-base" in vmms:
            s = samples["qvm-base"].get(k)
            sm = statistics.median(s) if s else None
            ratio = (sm / qm) if (sm is not None and qm) else float("nan")
            line += f" {sm if sm is not None else float('nan'):>14.1f} {ratio:>9.2f}"
        print(line)
    for v in vmms:
        if failures[v]:
            print(f"# {v}: {failures[v]} of {args.rounds} runs did not pass")
    return 0


def fs_of(path):
    try:
        with open("/proc/mounts") as f:
            best = ("?", "")
            rp = os.path.realpath(path)
            for line in f:
                dev, mnt, fstype = line.split()[:3]
                if (rp == mnt or rp.startswith(mnt.rstrip("/") + "/")) and len(mnt) >= len(best[1]):
                    best = (fstype, mnt)
            return f"{best[0]} at {best[1]}"
    except OSError:
        return "?"


def blk_main(args):
    args.bench = [b for b in args.bench.split(",") if b]
    args.tests = []
    dirs = [d for d in args.disk_dirs.split(",") if d]
    tmp = tempfile.TemporaryDirectory(prefix="qvm-bench-")
    # columns: (label, vmm, qvm config or None)
    variants = [v for v in args.qvm_aio.split(",") if v]
    qvm_cols = [(f"qvm {v}", "qvm", aio_config(v, tmp.name)) for v in variants] or [("qvm", "qvm", None)]
    if args.qvm_base:
        qvm_cols += [(f"base {c[0][4:]}".rstrip(), "qvm-base", c[2]) for c in qvm_cols]
    cols = [("QEMU", "qemu-microvm", None)]
    note = "qvm: not given (--qvm PATH); QEMU only"
    if args.qvm:
        res, m = one("qvm", args, dirs[0], qvm_cols[0][2])
        if res.ok and m:
            cols = qvm_cols + cols
            note = (f"qvm: {args.qvm} (tests/guest/configs/kit-virtio.qvmconf: buffered I/O"
                    + (f"; engines {', '.join(variants)})" if variants else ", threads 1)"))
        else:
            note = f"qvm: {args.qvm} cannot run the blk bench ({'; '.join(res.problems)[:300]}); QEMU only"
    print(f"# machine: {machine_description(args.qemu)}")
    print(f"# {note}")
    print(f"# QEMU microvm: -drive ...,format=raw,{args.qemu_drive}"
          f"{' + -object iothread (virtio-blk-device iothread=io0)' if args.qemu_iothread else ''}")
    print(f"# disk: {args.disk_mib} MiB raw file in " + ", ".join(f"{d} ({fs_of(d)})" for d in dirs) +
          f"; {args.rounds} rounds interleaved (storage x VMM); {args.bench_ms} ms per guest bench")
    samples = {(d, c[0]): {} for d in dirs for c in cols}
    failures = {(d, c[0]): 0 for d in dirs for c in cols}
    for r in range(args.rounds):
        for d in dirs:
            for label, vmm, conf in cols:
                res, m = one(vmm, args, d, conf)
                if not res.ok or not any("virtio_blk" in k for k in m):
                    failures[(d, label)] += 1
                    print(f"# round {r}: {label} on {d} failed: {'; '.join(res.problems)[:300]}", file=sys.stderr)
                for k, x in m.items():
                    if "virtio_blk" in k:
                        samples[(d, label)].setdefault(k, []).append(x)
    qvm_labels = [c[0] for c in cols if c[1] in ("qvm", "qvm-base")]
    for d in dirs:
        print(f"\n## disk file in {d} ({fs_of(d)}); medians, ratio = qvm/QEMU")
        hdr = f"{'metric':<34} {'QEMU':>9}"
        for lb in qvm_labels:
            hdr += f" {lb:>16} {'ratio':>6}"
        print(hdr)
        keys = []
        for c in cols:
            keys += [k for k in samples[(d, c[0])] if k not in keys]
        for k in sorted(keys):
            q = samples[(d, "QEMU")].get(k)
            qm = statistics.median(q) if q else float("nan")
            line = f"{k:<34} {qm:>9.0f}"
            for lb in qvm_labels:
                sv = samples[(d, lb)].get(k)
                sm = statistics.median(sv) if sv else float("nan")
                line += f" {sm:>16.0f} {sm / qm if qm else float('nan'):>6.2f}"
            print(line)
    for key, n in failures.items():
        if n:
            print(f"# {key[1]} on {key[0]}: {n} of {args.rounds} runs did not pass")
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
