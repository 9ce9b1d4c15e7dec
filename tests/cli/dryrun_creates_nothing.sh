#!/bin/sh
# dryrun_creates_nothing.sh QVM GUEST: `dryrun` checks and creates nothing on the host (spec §4,
# docs/config-language.md): a serial and a console output file that do not exist yet stay absent,
# no pseudo-terminal is made, a `vdev shmem create` region does not appear in the runtime
# directory; and an output in a directory that does not exist fails the dryrun as it would fail
# the run.
set -u
qvm=$1
guest=$2
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
region="dryrun-$$"
if [ "$(id -u)" = 0 ]; then rt=/run/qvm; else rt="${XDG_RUNTIME_DIR:-/tmp/qvm-$(id -u)}/qvm"; fi
before=$(ls /dev/pts | wc -l)
out=$("$qvm" ram 0,0xa0000 ram 1m,63m load "$guest" \
  vdev ioapic loc 0xfec00000 intr apic name pic \
  vdev ser8250 loc 0x3f8 intr pic:4 hostdev ">$dir/serial.out" \
  vdev ser8250 loc 0x2f8 intr pic:3 hostdev pty \
  vdev virtio-console hostdev ">$dir/console.out" \
  vdev shmem create "$region,64k" dryrun 2>&1)
rc=$?
[ $rc -eq 0 ] || { echo "FAIL: dryrun exited $rc: $out"; exit 1; }
for f in serial.out console.out; do
  [ ! -e "$dir/$f" ] || { echo "FAIL: dryrun created $dir/$f"; exit 1; }
done
echo "$out" | grep -q "serial.out (created when the VM runs)" || { echo "FAIL: no note: $out"; exit 1; }
[ ! -e "$rt/shm/r.$region" ] || { echo "FAIL: dryrun created region $rt/shm/r.$region"; exit 1; }
after=$(ls /dev/pts | wc -l)
[ "$after" -le "$before" ] || { echo "FAIL: dryrun made a pseudo-terminal"; exit 1; }
out=$("$qvm" ram 64m load "$guest" vdev ioapic loc 0xfec00000 intr apic name pic \
  vdev ser8250 loc 0x3f8 intr pic:4 hostdev ">$dir/no/such/dir/out" dryrun 2>&1)
rc=$?
[ $rc -ne 0 ] || { echo "FAIL: dryrun accepted an output it cannot create: $out"; exit 1; }
echo "$out" | grep -q "cannot create" || { echo "FAIL: unexpected message: $out"; exit 1; }
echo "PASS: dryrun created nothing; an uncreatable output exits $rc"
