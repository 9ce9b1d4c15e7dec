#!/bin/sh
# /init of the L2 guest that qvm boots inside the virtual test host (docs/testing.md).
# It loads the virtio and ext4 modules, reports what the *kernel* sees as `QVMT key value` lines on
# /dev/console, runs the checks named by qvmt= on the command line, then ends the way qvmt.end=
# says (poweroff: ACPI S5, reboot: reset, wait: run until killed). Checks:
#   boot     CPUs, memory, the virtio devices bound to drivers, the console
#   blk      ext4 on /dev/vda: write 4 MiB, sync, drop caches, read back, print the checksum;
#            /dev/vdb (read-only hostdev): the kernel's ro flag and a refused write
#   net      eth0 = qvmt.ip, ping qvmt.peer, send qvmt.mb MiB with nc to qvmt.peer:5000; with
#            qvmt.rxmb: then listen on 5001 (say rx-ready) and count what L1 sends (rx-bytes)
#   blkbench /dev/vda: qvmt.blkmb MiB (default 64) read, then written, 1 MiB O_DIRECT requests
#   rng      /dev/hwrng's source and 64 bytes from it
#   netup    eth0 = qvmt.ip, up
#   sink     eth0 = qvmt.ip, listen with nc on 5000 (say sink-ready), count what arrives
#            (sink-bytes, within 200 s)
#   ping     eth0 = qvmt.ip, ping qvmt.peer until it answers (up to 60 tries)
#   shm      the shmem vdev through the project's driver (tests/host/qvmshm): attach region
#            l2pair, write "from-IDX" into chunk IDX, wait until two clients are attached,
#            notify all, wait for the other's bit, read its chunk (shm-info, shm-peer, shm-irqs)
#   hpet     the HPET as Linux sees it: its boot line (hpet-dmesg: "hpet0: at MMIO ..."), whether
#            it registered as a clocksource (hpet-registered), the clocksources offered; then
#            hpet made the current clocksource (clocksource), 3 s of sleep, and whether the
#            clocksource watchdog found it unstable (hpet-unstable, empty when not)
#   wdt      the IB700 through Linux's ib700wdt (/dev/watchdog) and busybox's watchdog daemon
#            with a 4 s timeout kicked every second: 8 s of kicks then a magic close (the timer
#            stops: wdt-kicked), then kicks for 2 s and the daemon killed without a magic close
#            (wdt-abandoned): the VMM's action must end the VM within 30 s (else wdt-still-alive)
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $(cat /etc/modules); do modprobe "$m" 2>/dev/null; done
arg() { sed -n "s/.*$1=\([^ ]*\).*/\1/p" /proc/cmdline; }
say() { echo "QVMT $*" >/dev/console; }
sleep 0.2 # drivers bind asynchronously after modprobe
say up "$(cut -d' ' -f1 /proc/uptime)"
say cpus "$(grep -c ^processor /proc/cpuinfo)"
say online "$(cat /sys/devices/system/cpu/online)"
say memtotal_kb "$(awk '/MemTotal/{print $2}' /proc/meminfo)"
say console "$(cat /sys/class/tty/console/active 2>/dev/null)"
for d in /sys/bus/virtio/devices/*; do
  [ -e "$d" ] || continue
  drv=$(basename "$(readlink "$d/driver" 2>/dev/null)" 2>/dev/null)
  say virtio "$(basename "$d") device=$(cat "$d/device") driver=${drv:-none} via=$(basename "$(readlink -f "$d/..")")"
done
for c in $(echo "$(arg qvmt)" | tr ',' ' '); do
  case $c in
    boot) ;;
    blk)
      if mount -t ext4 /dev/vda /mnt; then
        dd if=/dev/urandom of=/mnt/data bs=1M count=4 2>/dev/null
        sum=$(sha256sum /mnt/data | cut -d' ' -f1)
        sync
        umount /mnt
        echo 3 >/proc/sys/vm/drop_caches
        mount -t ext4 /dev/vda /mnt && again=$(sha256sum /mnt/data | cut -d' ' -f1)
        umount /mnt
        say blk-sum "$sum"
        say blk-readback "$([ "$sum" = "$again" ] && echo ok || echo "mismatch $again")"
      else
        say blk-mount failed
      fi
      if [ -e /dev/vdb ]; then
        say blk-ro-flag "$(cat /sys/block/vdb/ro)"
        if dd if=/dev/zero of=/dev/vdb bs=4096 count=1 oflag=direct 2>/dev/null; then
          say blk-ro-write accepted
        else
          say blk-ro-write refused
        fi
        say blk-ro-read "$(dd if=/dev/vdb bs=4096 count=1 2>/dev/null | sha256sum | cut -d' ' -f1)"
      fi
      ;;
    net)
      ip link set lo up
      ip link set eth0 up
      ip addr add "$(arg qvmt.ip)/24" dev eth0
      say mac "$(cat /sys/class/net/eth0/address)"
      if ping -c 3 -W 5 "$(arg qvmt.peer)" >/dev/null 2>&1; then say ping ok; else say ping failed; fi
      mb=$(arg qvmt.mb)
      if [ -n "$mb" ]; then
        t0=$(cut -d' ' -f1 /proc/uptime)
        dd if=/dev/zero bs=1M count="$mb" 2>/dev/null | nc "$(arg qvmt.peer)" 5000
        say nc-status "$?" seconds "$(awk -v t0="$t0" '{print $1 - t0}' /proc/uptime)"
      fi
      rxmb=$(arg qvmt.rxmb)
      if [ -n "$rxmb" ]; then
        # Receive leg: L1 sends once it sees rx-ready. The listener's stdin stays open for at most
        # 150 s (busybox nc stops at its stdin's end), which bounds the wait.
        (sleep 150 | nc -l -p 5001 | wc -c >/tmp/rx.count) &
        sleep 0.5
        t0=$(cut -d' ' -f1 /proc/uptime)
        say rx-ready
        i=0 # wc writes the count when nc ends (the job itself lasts as long as its sleep)
        while [ ! -s /tmp/rx.count ] && [ $i -lt 310 ]; do sleep 0.5; i=$((i + 1)); done
        say rx-bytes "$(cat /tmp/rx.count)" seconds "$(awk -v t0="$t0" '{print $1 - t0}' /proc/uptime)"
      fi
      ;;
    blkbench)
      mb=$(arg qvmt.blkmb)
      for op in read write; do
        t0=$(cut -d' ' -f1 /proc/uptime)
        if [ $op = read ]; then
          dd if=/dev/vda of=/dev/null bs=1M count="${mb:-64}" iflag=direct 2>/dev/null
        else
          dd if=/dev/zero of=/dev/vda bs=1M count="${mb:-64}" oflag=direct 2>/dev/null
        fi
        say "blk-$op-mbps" "$(awk -v t0="$t0" -v mb="${mb:-64}" '{ d = $1 - t0; if (d <= 0) d = 0.01; printf "%.1f", mb / d }' /proc/uptime)"
      done
      ;;
    rng)
      say rng-current "$(cat /sys/class/misc/hw_random/rng_current 2>/dev/null)"
      say rng-bytes "$(dd if=/dev/hwrng bs=64 count=1 2>/dev/null | wc -c)"
      ;;
    sink)
      ip link set lo up
      ip link set eth0 up
      ip addr add "$(arg qvmt.ip)/24" dev eth0
      # busybox nc stops at its stdin's end: the sleep keeps it open and bounds the wait.
      (sleep 200 | nc -l -p 5000 | wc -c >/tmp/sink.count) &
      sleep 0.5
      t0=$(cut -d' ' -f1 /proc/uptime)
      say sink-ready
      i=0
      while [ ! -s /tmp/sink.count ] && [ $i -lt 410 ]; do sleep 0.5; i=$((i + 1)); done
      say sink-bytes "$(cat /tmp/sink.count)" seconds "$(awk -v t0="$t0" '{print $1 - t0}' /proc/uptime)"
      ;;
    netup)
      ip link set eth0 up
      ip addr add "$(arg qvmt.ip)/24" dev eth0
      say netup "$(cat /sys/class/net/eth0/operstate)"
      ;;
    ping)
      ip link set eth0 up
      ip addr add "$(arg qvmt.ip)/24" dev eth0
      i=0
      until ping -c 1 -W 1 "$(arg qvmt.peer)" >/dev/null 2>&1; do
        i=$((i + 1))
        [ $i -lt 60 ] || break
      done
      say ping "$([ $i -lt 60 ] && echo ok || echo failed) tries $i"
      ;;
    shm)
      if insmod /lib/modules/qvmshm_test.ko name=l2pair; then
        q=/sys/class/misc/qvmshm
        info=$(cat $q/info)
        say shm-info "$info"
        idx=${info#idx=}
        idx=${idx%% *}
        other=$((1 - idx))
        printf 'from-%s\0' "$idx" | dd of=/dev/qvmshm bs=4096 seek="$idx" conv=notrunc 2>/dev/null
        i=0
        while [ $i -lt 600 ] && ! grep -q "attached=0x3" $q/live; do sleep 0.1; i=$((i + 1)); done
        say shm-both "$(cat $q/live)"
        echo all >$q/notify
        i=0
        while [ $i -lt 600 ]; do
          seen=$(sed 's/.*seen=//' $q/status)
          [ $((seen & (1 << other))) -ne 0 ] && break # the interrupt handler saw it
          sleep 0.1
          i=$((i + 1))
        done
        say shm-seen "$seen"
        say shm-peer "$(dd if=/dev/qvmshm bs=4096 skip="$other" count=1 2>/dev/null | tr -d '\0' | head -c 32)"
        say shm-irqs "$(cat $q/irqs)"
      else
        say shm-info "insmod failed"
      fi
      ;;
    hpet)
      cs=/sys/devices/system/clocksource/clocksource0
      say hpet-dmesg "$(dmesg | grep -m1 'hpet0: at MMIO' | sed 's/^\[[^]]*\] *//')"
      say hpet-registered "$(dmesg | grep -q 'clocksource: hpet:' && echo yes || echo no)"
      say clocksources "$(cat $cs/available_clocksource)"
      echo hpet >$cs/current_clocksource 2>/dev/null
      say clocksource "$(cat $cs/current_clocksource)"
      u0=$(cut -d' ' -f1 /proc/uptime)
      sleep 3
      say hpet-uptime3 "$(awk -v a="$u0" '{ printf "%.1f", $1 - a }' /proc/uptime)"
      say hpet-unstable "$(dmesg | grep -i "hpet.*unstable" | head -1)"
      ;;
    wdt)
      if [ -e /dev/watchdog ]; then
        say wdt-driver "$([ -d /sys/module/ib700wdt ] && echo ib700wdt)"
        watchdog -F -T 4 -t 1 /dev/watchdog &
        pid=$!
        sleep 8
        kill -TERM $pid # busybox writes the magic 'V' and closes: the driver stops the timer
        wait $pid
        say wdt-kicked "8 s of kicks with a 4 s timeout, then stopped"
        sleep 6 # stopped: no expiry
        watchdog -F -T 4 -t 1 /dev/watchdog &
        pid=$!
        sleep 2
        kill -KILL $pid # no magic close: the timer keeps running
        say wdt-abandoned "$(cut -d' ' -f1 /proc/uptime)"
        sleep 30
        say wdt-still-alive "$(cut -d' ' -f1 /proc/uptime)"
      else
        say wdt-driver "no /dev/watchdog"
      fi
      ;;
    *) say unknown-check "$c" ;;
  esac
done
say done "$(cut -d' ' -f1 /proc/uptime)"
case $(arg qvmt.end) in
  reboot) reboot -f ;;
  wait) while :; do sleep 3600; done ;;
  *) poweroff -f ;;
esac
