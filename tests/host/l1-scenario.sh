#!/bin/bash
# Runs one scenario of the virtual test host inside L1 (a chroot over the host's root; see
# l1-init.sh). Each scenario starts qvm with a .qvmconf and the L2 Linux guest (Debian's kernel +
# l2.cpio.gz whose /init is l2-init.sh) and checks what the L2 *kernel* reports (QVMT lines on its
# console) plus qvm's exit status and the host-side files after qvm exits.
# Prints `HOSTTEST <check> PASS|FAIL <detail>` lines, read by tests/host/run.py.
#   usage: l1-scenario.sh boot|blk|net|console|peer|peer-restart
set -u
QVM=$QVMHOST_BUILD/qvm
IMG=$QVMHOST_IMAGES
WORK=$(mktemp -d /tmp/qvmhost.XXXXXX)
failures=0
result() { # NAME PASS|FAIL DETAIL...
  local name=$1 status=$2
  shift 2
  echo "HOSTTEST $name $status $*"
  [ "$status" = PASS ] || failures=$((failures + 1))
}
check() { # NAME CONDITION-TEXT EXPECTED ACTUAL
  if [ "$3" = "$4" ]; then result "$1" PASS "$2 = $4"; else result "$1" FAIL "$2: want '$3', got '$4'"; fi
}
qvmt() { # RUN KEY: the value of the L2 line `QVMT KEY value` (first one)
  sed -n "s/^QVMT $2 //p" "$WORK/$1.console" | tr -d '\r' | head -1
}

# conf RUN CPUS KERNEL CMDLINE [EXTRA-LINES]: the platform every scenario shares (the shape of
# examples/linux-x86_64-guest.qvmconf): 256 MiB, IOAPIC/PIC/PIT/RTC, COM1 on qvm's stdout.
conf() {
  local cpus=""
  for ((i = 0; i < $2; i++)); do cpus+=$'cpu\n'; done
  cat >"$WORK/$1.qvmconf" <<CONF
system $1
ram 0,0xa0000
reserve loc 0xa0000,0x20000
rom 0xc0000,0x40000
ram 1m,255m
${cpus}load $3
initrd load $IMG/l2.cpio.gz
cmdline "$4"
vdev ioapic loc 0xfec00000 intr apic name myioapic
vdev 8259 loc 0x20
vdev 8259 loc 0xa0
vdev timer8254 intr myioapic:0
vdev mc146818 intr myioapic:8
vdev ser8250 loc 0x3f8 intr myioapic:4 hostdev -
vdev pckeyboard
${5:-}
CONF
}

# run RUN TIMEOUT: runs qvm on $WORK/RUN.qvmconf; the guest console goes to RUN.console, qvm's
# log to RUN.log; sets $rc (124 = timed out) and $secs. On failure the caller prints the tails.
run() {
  local t0 t1
  t0=$(date +%s.%N)
  timeout -s QUIT "$2" "$QVM" "@$WORK/$1.qvmconf" </dev/null >"$WORK/$1.console" 2>"$WORK/$1.log"
  rc=$?
  t1=$(date +%s.%N)
  secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
  [ $rc -ne 124 ] || rc=timeout
}
tails() { # RUN: the tails of the L2 console and qvm's log, for a failure's diagnosis
  sed 's/^/  console| /' "$WORK/$1.console" | tail -25
  sed 's/^/  qvm| /' "$WORK/$1.log" | tail -15
}
QUIET="console=ttyS0 quiet loglevel=3 tsc=reliable"

scenario_boot() {
  local k cpus run end
  for k in bzimage pvh; do
    for cpus in 1 2; do
      run=boot-$k-$cpus
      end=poweroff
      [ "$cpus" = 2 ] && end=reboot
      local kernel=$IMG/vmlinuz
      [ $k = pvh ] && kernel=$IMG/vmlinux
      conf $run $cpus "$kernel" "$QUIET qvmt=boot qvmt.end=$end"
      run $run 120
      local up
      up=$(qvmt $run up)
      check $run.exit "qvm exit status after $end" 0 "$rc"
      check $run.cpus "CPUs the kernel counts" "$cpus" "$(qvmt $run cpus)"
      check $run.done "L2 init reached its end" yes "$([ -n "$(qvmt $run done)" ] && echo yes || echo no)"
      if [ $end = reboot ]; then
        check $run.reason "qvm logs the reboot" yes "$(grep -qi 'reset\|reboot' "$WORK/$run.log" && echo yes || echo no)"
      fi
      echo "HOSTINFO $run l2-uptime-at-init=${up:-?}s qvm-wall=${secs}s"
      [ $failures -eq 0 ] || tails $run
    done
  done
}

scenario_"$1"
echo "HOSTDONE $1 failures=$failures"
rm -rf "$WORK"
[ $failures -eq 0 ]
