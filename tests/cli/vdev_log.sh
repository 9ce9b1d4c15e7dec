#!/usr/bin/env bash
# vdev_log.sh QVM DISK: a vdev's own `log CLASSES DEST` routes its messages (spec §5 common vdev
# options). DISK is a file whose size is not a multiple of 512, so virtio-blk warns about it while
# it is built: on stderr by default, nowhere with `log warn none`, on stdout with `log warn
# stdout`; a global warning (hostvector on another vdev) keeps the global routing throughout.
set -u
qvm=$1 disk=$2
msg="not a multiple of 512"
fail=0
check() { # NAME WANT-STDERR WANT-STDOUT LOG-ARGS...
  local name=$1 want_err=$2 want_out=$3
  shift 3
  local out err
  out=$("$qvm" ram 64m vdev ioapic name a hostvector 32 vdev virtio-blk hostdev "$disk" "$@" dryrun \
    2>/tmp/qvm-vdev-log.$$)
  err=$(cat /tmp/qvm-vdev-log.$$)
  rm -f /tmp/qvm-vdev-log.$$
  local got_err=0 got_out=0
  grep -q "$msg" <<<"$err" && got_err=1
  grep -q "$msg" <<<"$out" && got_out=1
  if [ "$got_err$got_out" != "$want_err$want_out" ] || ! grep -q "hostvector' has no effect" <<<"$err"; then
    echo "FAIL $name: '$msg' on stderr=$got_err stdout=$got_out (want $want_err $want_out)"
    printf '%s\n--- stdout\n%s\n' "$err" "$out"
    fail=1
  else
    echo "PASS $name"
  fi
}
check default 1 0
check none 0 0 log warn none
check stdout 0 1 log warn stdout
exit $fail
