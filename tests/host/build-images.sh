#!/usr/bin/env bash
# Builds the virtual test host's images from Debian packages only (docs/testing.md, layer 1):
#   vmlinuz        Debian's standard kernel (linux-image-amd64's dependency), the bzImage for L1 and L2
#   vmlinux        the same kernel uncompressed (ELF with its Xen PVH note), for L2's PVH path
#   l1.cpio.gz     L1's initramfs: busybox-static, kvm/kvm_amd, vhost_net, tun, bridge, vfio-pci, 9p
#                  and the virtio modules; its /init mounts the host's root over 9p (read-only) and
#                  runs tests/host/l1-scenario.sh from it in a chroot
#   l2.cpio.gz     L2's initramfs: busybox-static, the virtio and ext4 modules, tests/host/l2-init.sh
#   xen.elf        Debian's Xen hypervisor (xen-hypervisor-*-amd64), decompressed: an ELF32 with a
#                  multiboot v1 header, for the `xen` scenario (multiboot under qvm)
# The kernel .deb comes from `apt-get download`, its SHA-256 is checked against apt's record, and
# everything is cached outside git in $QVM_CACHE (default ~/.cache/qvm)/host/<package>/. The
# initramfs files are rebuilt when this script or an init script changes (their hash names them).
# Prints the cache folder.
set -euo pipefail
export LC_ALL=C # byte-wise grep for the XZ magic
here=$(cd "$(dirname "$0")" && pwd)
CACHE=${QVM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/qvm}/host
BUSYBOX=${BUSYBOX:-/bin/busybox}
die() { echo "build-images: $*" >&2; exit 1; }
[ -x "$BUSYBOX" ] || die "$BUSYBOX missing (apt install busybox-static)"
dpkg-query -W -f '${Status}' busybox-static 2>/dev/null | grep -q "ok installed" || die "busybox-static is not installed (scripts/install-deps.sh)"
for t in cpio gzip xz dpkg-deb; do command -v $t >/dev/null || die "$t missing (scripts/install-deps.sh)"; done

pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-/{print $2; exit}')
if [ -z "$pkg" ]; then
  apt-get update -qq >/dev/null 2>&1 || true
  pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-/{print $2; exit}')
fi
[ -n "$pkg" ] || die "no linux-image-amd64 in apt"
kver=${pkg#linux-image-}
dir=$CACHE/$pkg
mkdir -p "$dir"
cd "$dir"

# 1. The kernel package, checked and unpacked once.
if ! { [ -f deb.sha256 ] && [ -d root/lib/modules/$kver ] && [ -f vmlinuz ] && [ -f vmlinux ]; }; then
  rm -rf root ./*.deb vmlinuz vmlinux deb.sha256
  want=$(apt-cache show "$pkg" | awk '/^SHA256:/{print $2; exit}')
  # apt's sandbox user cannot write to root-owned folders; download as the caller.
  apt-get download -o APT::Sandbox::User=root "$pkg" >/dev/null 2>&1 || apt-get download "$pkg" >/dev/null
  deb=$(ls ./*.deb)
  got=$(sha256sum "$deb" | awk '{print $1}')
  [ -z "$want" ] || [ "$got" = "$want" ] || die "$deb has SHA-256 $got, apt says $want"
  dpkg-deb -x "$deb" root
  cp root/boot/vmlinuz-"$kver" vmlinuz
  # The standard flavour is XZ-compressed; the payload starts at the XZ magic fd 37 7a 58 5a 00.
  off=$(grep -obUaP '\xfd\x37\x7a\x58\x5a\x00' vmlinuz | head -1 | cut -d: -f1)
  tail -c +$((off + 1)) vmlinuz | xz -dc >vmlinux 2>/dev/null || true
  [ "$(head -c 4 vmlinux | od -An -tx1 | tr -d ' ')" = "7f454c46" ] || die "vmlinux extraction failed"
  "$BUSYBOX" depmod -b root "$kver"
  rm -f "$deb"
  echo "$got" >deb.sha256
fi

# 1b. Debian's Xen hypervisor, checked and unpacked once: /boot/xen-*.gz is a gzipped ELF32 with
#     a multiboot v1 header (and a v2 one, which qvm does not read).
xpkg=$(apt-cache pkgnames xen-hypervisor- 2>/dev/null | grep -E '^xen-hypervisor-[0-9.]+-amd64$' | sort -V | tail -1)
[ -n "$xpkg" ] || die "no xen-hypervisor-*-amd64 in apt"
if ! { [ -f xen.sha256 ] && [ -f xen.elf ] && [ "$(cat xen.pkg 2>/dev/null)" = "$xpkg" ]; }; then
  rm -f xen.elf xen.sha256 xen.pkg
  xdir=$(mktemp -d)
  want=$(apt-cache show "$xpkg" | awk '/^SHA256:/{print $2; exit}')
  (cd "$xdir" && { apt-get download -o APT::Sandbox::User=root "$xpkg" >/dev/null 2>&1 || apt-get download "$xpkg" >/dev/null; })
  deb=$(ls "$xdir"/*.deb)
  got=$(sha256sum "$deb" | awk '{print $1}')
  [ -z "$want" ] || [ "$got" = "$want" ] || die "$deb has SHA-256 $got, apt says $want"
  dpkg-deb -x "$deb" "$xdir/root"
  gzip -dc "$xdir"/root/boot/xen-*-amd64.gz >xen.elf.tmp
  [ "$(head -c 5 xen.elf.tmp | od -An -tx1 | tr -d ' ')" = "7f454c4601" ] || die "$xpkg: /boot/xen-*.gz is not an ELF32"
  mv xen.elf.tmp xen.elf
  rm -rf "$xdir"
  echo "$got" >xen.sha256
  echo "$xpkg" >xen.pkg
fi

# 2. An initramfs: busybox, the modules named and their dependencies (modules.dep), an /init.
#    make_initramfs OUT INIT MODULE...
make_initramfs() {
  local out=$1 init=$2
  shift 2
  local stage
  stage=$(mktemp -d)
  mkdir -p "$stage"/{bin,dev,proc,sys,tmp,mnt,etc,root,lib/modules/$kver}
  cp "$BUSYBOX" "$stage/bin/busybox"
  for a in sh mount modprobe insmod; do ln -s busybox "$stage/bin/$a"; done
  local dep=root/lib/modules/$kver/modules.dep want m
  want=$(for m in "$@"; do
    awk -v m="$m" -F: '{ n = $1; sub(/.*\//, "", n); sub(/\.ko$/, "", n); gsub(/-/, "_", n);
                         k = m; gsub(/-/, "_", k);
                         if (n == k) { print $1; print $2 } }' "$dep"
  done | tr ' ' '\n' | sed '/^$/d' | sort -u)
  for m in "$@"; do
    echo "$want" | tr '-' '_' | grep -q "/${m//-/_}.ko$" || die "module $m not in $pkg"
  done
  for m in $want; do
    mkdir -p "$stage/lib/modules/$kver/$(dirname "$m")"
    cp "root/lib/modules/$kver/$m" "$stage/lib/modules/$kver/$m"
  done
  "$BUSYBOX" depmod -b "$stage" "$kver"
  # Files of the project's own (EXTRA_FILES: "SOURCE:DEST ..."), e.g. the shmem test driver.
  local f
  for f in ${EXTRA_FILES:-}; do cp "${f%%:*}" "$stage/${f#*:}"; done
  cp "$init" "$stage/init"
  chmod 755 "$stage/init"
  printf '%s\n' "$@" >"$stage/etc/modules"
  (cd "$stage" && find . | cpio -o -H newc --quiet | gzip -1) >"$out.tmp"
  mv "$out.tmp" "$out"
  rm -rf "$stage"
}

# 3. The project's test driver for the shmem vdev (tests/host/qvmshm), built against Debian's
#    headers for this very kernel (linux-headers-amd64: scripts/install-deps.sh); L2 insmods it.
headers=/usr/src/linux-headers-$kver
[ -f "$headers/Makefile" ] || die "$headers missing (apt install linux-headers-$kver; scripts/install-deps.sh)"
msum=$(cat "$here/qvmshm/Kbuild" "$here/qvmshm/qvmshm_test.c" "$headers/Makefile" | sha256sum | cut -c1-16)
if [ ! -f "qvmshm-$msum.ko" ]; then
  rm -f qvmshm-*.ko
  mdir=$(mktemp -d)
  cp "$here/qvmshm/Kbuild" "$here/qvmshm/qvmshm_test.c" "$mdir/"
  make -s -C "$headers" M="$mdir" modules >"$mdir/build.log" 2>&1 ||
    { cat "$mdir/build.log" >&2; die "building the qvmshm test driver failed"; }
  cp "$mdir/qvmshm_test.ko" "qvmshm-$msum.ko"
  rm -rf "$mdir"
fi

sum=$(cat "$here/build-images.sh" "$here/l1-init.sh" "$here/l2-init.sh" "qvmshm-$msum.ko" | sha256sum | cut -c1-16)
L1_MODULES="virtio_pci 9pnet_virtio 9p kvm-amd vhost_net tun bridge vfio-pci"
L2_MODULES="virtio_mmio virtio_pci virtio_blk virtio_net virtio_console virtio-rng ext4 crc32c_generic ib700wdt"
if [ ! -f "l1-$sum.cpio.gz" ] || [ ! -f "l2-$sum.cpio.gz" ]; then
  rm -f l1-*.cpio.gz l2-*.cpio.gz
  # shellcheck disable=SC2086
  make_initramfs "l1-$sum.cpio.gz" "$here/l1-init.sh" $L1_MODULES
  # shellcheck disable=SC2086
  EXTRA_FILES="$dir/qvmshm-$msum.ko:lib/modules/qvmshm_test.ko" \
    make_initramfs "l2-$sum.cpio.gz" "$here/l2-init.sh" $L2_MODULES
fi
ln -sf "l1-$sum.cpio.gz" l1.cpio.gz
ln -sf "l2-$sum.cpio.gz" l2.cpio.gz
echo "$dir"
