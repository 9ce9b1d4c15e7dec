#!/usr/bin/env bash
# Style checks that keep the tree honest: clang-format, file size, includes only from the
# layers below (the layer table), and ARCHITECTURE.md's code map naming only paths that exist.
set -uo pipefail
cd "$(dirname "$0")/.."
rc=0
files=$(git ls-files 'src/*.cpp' 'src/*.hpp' 'tests/unit/*.cpp' 'tests/unit/*.hpp' 'fuzz/*.cpp' 2>/dev/null)
if [ -n "$files" ]; then
  unformatted=""
  for f in $files; do
    clang-format --dry-run -Werror "$f" >/dev/null 2>&1 || unformatted="$unformatted $f"
  done
  if [ -n "$unformatted" ]; then
    echo "source-checks: files need clang-format (make format):$unformatted"
    rc=1
  fi
  for f in $files; do
    n=$(wc -l <"$f")
    if [ "$n" -gt 800 ]; then echo "source-checks: $f has $n lines (split above 800)"; rc=1; fi
  done
fi
# Layers (ARCHITECTURE.md): a folder under src/ includes only from itself and the layers below it,
# so an upward include fails here even where CMake's transitive include paths would allow it.
declare -A below=(
  [base]="" [config]="base" [memory]="base" [kvm]="base memory" [bus]="base"
  [pci]="base bus" [net]="base" [shm]="base" [dump]="base" [gdb]="base" [event]="base" [fdt]="base"
  [arch]="base memory"
  [virtio]="base bus memory pci"
  [vdev]="base bus config event fdt memory net pci shm virtio"
  [machine]="arch base bus config dump event fdt gdb kvm memory net pci shm vdev virtio"
  [app]="arch base bus config dump event fdt gdb kvm machine memory net pci shm vdev virtio"
)
for layer in $(ls src); do
  [ -d "src/$layer" ] || continue
  if [ -z "${below[$layer]+set}" ]; then
    echo "source-checks: src/$layer is not in the layer table of scripts/source-checks.sh"
    rc=1
    continue
  fi
  allowed=" $layer ${below[$layer]} "
  while IFS=: read -r file line inc; do
    dep=${inc#*\"}
    dep=${dep%%/*}
    case "$allowed" in
      *" $dep "*) ;;
      *) echo "source-checks: $file:$line includes $dep/, above or beside layer $layer"; rc=1 ;;
    esac
  done < <(grep -rnoE '#include "[a-z0-9_]+/' "src/$layer")
done
if [ -f ARCHITECTURE.md ]; then
  for p in $(grep -oE '`(src|tests|fuzz|bench|docs|scripts|examples|include)/[^` ]*`' ARCHITECTURE.md | tr -d '`'); do
    [ -e "$p" ] || { echo "source-checks: ARCHITECTURE.md names $p, which does not exist"; rc=1; }
  done
fi
[ $rc -eq 0 ] && echo "source-checks: ok"
exit $rc
