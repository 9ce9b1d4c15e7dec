#!/bin/sh
# /init of the virtual test host (L1; docs/testing.md). Loads the modules listed in /etc/modules,
# mounts the host's root read-only over 9p (mount tag "hostroot"), makes it usable as a chroot
# (proc, sys, dev, a tmpfs on /run) and runs the scenario script named on the kernel
# command line from the project's tree:
#   qvmhost.repo=DIR qvmhost.qvm=FILE qvmhost.scenario=NAME qvmhost.images=DIR [qvmhost.env=K=V,...]
# Every line the scenario prints goes to the console (L1's serial); the host-side runner reads it.
# L1 powers off when the scenario ends, whatever happens.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
arg() { sed -n "s/.*$1=\([^ ]*\).*/\1/p" /proc/cmdline; }
# Transparent huge pages in L1 (run.py --thp; qvm asks for them on guest RAM with MADV_HUGEPAGE,
# as QEMU does). Off by default: with QEMU 7.2 as L1 they made L2 fault under traffic, and with
# 10.0 the stack still faults with or without them (docs/test-host.md, "Which QEMU").
thp=$(arg qvmhost.thp)
echo "${thp:-never}" >/sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null
for m in $(cat /etc/modules); do
  modprobe "$m" || echo "L1: modprobe $m failed"
done
mkdir -p /host
if mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000,cache=loose hostroot /host; then
  mount -t proc proc /host/proc
  mount -t sysfs sys /host/sys
  mount -t devtmpfs dev /host/dev
  mkdir -p /dev/pts 2>/dev/null
  mount -t devpts devpts /host/dev/pts 2>/dev/null
  # Writable space is a tmpfs on /run only: the host's /tmp stays visible (read-only), because the
  # tree under test and its build may live there (CI clones into temporary folders).
  mount -t tmpfs -o size=1200m tmpfs /host/run
  echo "L1: up $(cut -d' ' -f1 /proc/uptime) s, kvm=$([ -c /dev/kvm ] && echo yes || echo no)" \
    "vhost-net=$([ -c /dev/vhost-net ] && echo yes || echo no)" \
    "thp=$(sed -n 's/.*\[\(.*\)\].*/\1/p' /sys/kernel/mm/transparent_hugepage/enabled)"
  # qvmhost.env=K=V,K=V: scenario knobs (QVMHOST_*) from run.py --env
  chroot /host /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/run TMPDIR=/run $(arg qvmhost.env | tr ',' ' ') \
    QVMHOST_REPO="$(arg qvmhost.repo)" QVMHOST_QVM="$(arg qvmhost.qvm)" \
    QVMHOST_IMAGES="$(arg qvmhost.images)" \
    /bin/bash "$(arg qvmhost.repo)/tests/host/l1-scenario.sh" "$(arg qvmhost.scenario)"
  echo "L1: scenario ended with status $?"
else
  echo "L1: cannot mount the host's root over 9p"
fi
echo "L1: done"
poweroff -f
