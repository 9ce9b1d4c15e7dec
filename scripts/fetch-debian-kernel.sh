#!/usr/bin/env bash
# Fetches Debian's cloud kernel (linux-image-cloud-amd64's current dependency) with
# `apt-get download` into a cache outside git, checks it, and extracts:
#   vmlinuz  the bzImage (Linux boot protocol path)
#   vmlinux  the uncompressed ELF with its Xen PVH note (PVH path; the cloud kernel is LZ4)
# Prints the cache folder. The .deb's SHA-256 is checked against apt's own record
# (apt-cache show) and recorded; later runs re-verify the extracted files against it.
set -euo pipefail
CACHE=${QVM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/qvm}/debian-kernel
mkdir -p "$CACHE"
cd "$CACHE"
pkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends: linux-image-/{print $2; exit}')
if [ -z "$pkg" ]; then
  apt-get update -qq >/dev/null 2>&1 || true
  pkg=$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image-/{print $2; exit}')
fi
[ -n "$pkg" ] || { echo "fetch-debian-kernel: no linux-image-cloud-amd64 in apt" >&2; exit 1; }
want=$(apt-cache show "$pkg" | awk '/^SHA256:/{print $2; exit}')
if [ -f "$pkg.sha256" ] && [ -f vmlinuz ] && [ -f vmlinux ] && sha256sum -c --quiet "$pkg.sha256" 2>/dev/null; then
  echo "$CACHE"
  exit 0
fi
rm -f ./*.deb vmlinuz vmlinux
# apt's sandbox user cannot write to root-owned folders; download as the caller.
apt-get download -o APT::Sandbox::User=root "$pkg" >/dev/null 2>&1 || apt-get download "$pkg" >/dev/null
deb=$(ls ./*.deb)
got=$(sha256sum "$deb" | awk '{print $1}')
if [ -n "$want" ] && [ "$got" != "$want" ]; then
  echo "fetch-debian-kernel: $deb has SHA-256 $got, apt says $want" >&2
  exit 1
fi
rm -rf x && dpkg-deb -x "$deb" x
cp x/boot/vmlinuz-* vmlinuz
# The compressed payload starts at the LZ4 legacy-frame magic 02 21 4c 18.
off=$(grep -obUaP '\x02\x21\x4c\x18' vmlinuz | head -1 | cut -d: -f1)
tail -c +$((off + 1)) vmlinuz | lz4 -dc >vmlinux 2>/dev/null || true
[ "$(head -c 4 vmlinux | od -An -tx1 | tr -d ' ')" = "7f454c46" ] || { echo "fetch-debian-kernel: vmlinux extraction failed" >&2; exit 1; }
rm -rf x "$deb"
sha256sum vmlinuz vmlinux >"$pkg.sha256"
echo "$pkg" >package
echo "$CACHE"
