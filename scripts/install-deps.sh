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
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
