#!/usr/bin/env bash
# Installs qvm's build and test dependencies from Debian 12 packages (apt only).
# Idempotent: does nothing when everything is already installed.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config git
  clang libclang-rt-14-dev clang-format          # fuzz targets (libFuzzer), formatting check
  libgtest-dev googletest                        # unit tests
  libfdt-dev device-tree-compiler                # FDT generation and checking (dtc)
  liburing-dev                                   # virtio-blk io_uring backend
  acpica-tools                                   # iasl -d checks the generated ACPI tables
  qemu-system-x86 seabios                        # reference VMM for the guest test kit, firmware
  busybox-static cpio time python3 iproute2      # test host images, runner, peak-RSS measurement
  lz4 xz-utils e2fsprogs procps                  # kernel extraction, ext4 images, the L1 scenarios
  linux-headers-amd64                            # the L2 shmem test driver (tests/host/qvmshm)
  gdb                                            # the GDB stub and guest dump tests (tests/system)
)

# QEMU comes from Debian's bookworm-backports (10.x), only QEMU and its firmware: 7.2's SVM
# emulation loses an interrupt arriving in the STI shadow of L2 and its multi-threaded TCG hangs
# L1 during L2 VM teardown, which made the virtual test host fail under load (docs/test-host.md,
# "Which QEMU"). QEMU >= 9.1 has neither. The guest kit's QEMU reference runs use the same one.
QEMU_MIN=9.1
BACKPORTS_PACKAGES="qemu-system-x86 qemu-system-common qemu-system-data qemu-system-gui seabios ipxe-qemu"
SOURCES=/etc/apt/sources.list.d/qvm-bookworm-backports.sources
PREFS=/etc/apt/preferences.d/qvm-bookworm-backports.pref

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive

qemu_version() { dpkg-query -W -f='${Version}' qemu-system-x86 2>/dev/null | sed 's/^[0-9]*://'; }
qemu_ok() {
  local v
  v=$(qemu_version)
  [ -n "$v" ] && dpkg --compare-versions "$v" ge "$QEMU_MIN"
}

# The mirror the machine's apt already uses for bookworm (deb822 .sources or one-line lists).
debian_mirror() {
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    awk 'BEGIN { RS=""; FS="\n" }
         /(^|\n)Suites:[^\n]*(^|[ \t])bookworm([ \t]|$)/ {
           for (i = 1; i <= NF; i++) if ($i ~ /^URIs:/) { sub(/^URIs:[ \t]*/, "", $i); split($i, u, /[ \t]+/); print u[1]; exit }
         }' "$f"
  done | head -n 1 || true
  cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
    awk '$1 == "deb" { i = 2; if ($2 ~ /^\[/) { while ($i !~ /\]$/) i++; i++ } if ($(i + 1) == "bookworm") { print $i; exit } }'
  return 0
}

add_backports() {
  local mirror
  mirror=$(debian_mirror | head -n 1) || true
  if [ -z "$mirror" ]; then
    echo "install-deps: no apt source for Debian bookworm found; cannot add bookworm-backports" >&2
    exit 1
  fi
  echo "install-deps: adding bookworm-backports from $mirror, pinned to: $BACKPORTS_PACKAGES"
  printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
    "$mirror" | $SUDO tee "$SOURCES" >/dev/null
  # Everything else in backports keeps its default priority (100: never chosen over bookworm).
  printf 'Package: %s\nPin: release n=bookworm-backports\nPin-Priority: 990\n' "$BACKPORTS_PACKAGES" |
    $SUDO tee "$PREFS" >/dev/null
}

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ] && qemu_ok && [ -f "$SOURCES" ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages present (QEMU $(qemu_version))"
  exit 0
fi
[ -f "$SOURCES" ] && [ -f "$PREFS" ] || add_backports
qemu_ok || missing+=(qemu-system-x86 seabios)
$SUDO apt-get update -qq
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
if ! qemu_ok; then
  echo "install-deps: qemu-system-x86 $(qemu_version) is older than $QEMU_MIN (bookworm-backports missing?)" >&2
  exit 1
fi
