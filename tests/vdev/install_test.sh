#!/bin/sh
# `make install` of the vdev API (docs/vdev-api.md): installs the build into a fresh prefix, then
# builds the sample vdev against the installed qvm-vdev.pc only.
#   usage: install_test.sh BUILD_DIR SOURCE_DIR
set -eu
build=$1 src=$2
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT
cmake --install "$build" --prefix "$prefix" >/dev/null
for f in bin/qvm include/qvm/vdev-core.h include/qvm/guest.h include/qvm/abi.h; do
  [ -e "$prefix/$f" ] || { echo "not installed: $f"; exit 1; }
done
pc=$(find "$prefix" -name qvm-vdev.pc)
[ -n "$pc" ] || { echo "qvm-vdev.pc not installed"; exit 1; }
# The installed file names the prefix it was configured for; point it at this one.
sed -i "s|^includedir=.*|includedir=$prefix/include|" "$pc"
PKG_CONFIG_PATH=$(dirname "$pc") make -s -B -C "$src/examples/vdev/regbank" O="$prefix"
[ -s "$prefix/vdev-regbank.so" ] || { echo "the sample did not build"; exit 1; }
echo "installed and built the sample against $pc"
