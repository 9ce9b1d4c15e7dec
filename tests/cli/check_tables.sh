#!/usr/bin/env bash
# check_tables.sh QVM CONFIG: dryruns CONFIG with `set acpi-dump-dir` and `set fdt-dump-file`,
# then disassembles every ACPI table with iasl -d and the FDT with dtc; any error or checksum
# warning fails.
set -u
qvm=$1 config=$2
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
out=$("$qvm" @"$config" set acpi-dump-dir "$dir/acpi" set fdt-dump-file "$dir/vm.dtb" dryrun 2>&1) || {
  echo "$out"; exit 1; }
grep -q "FDT saved to '$dir/vm.dtb'" <<<"$out" || { echo "no 'FDT saved to' message"; exit 1; }
n=0
for t in "$dir"/acpi/*.dat; do
  log=$(cd "$dir/acpi" && iasl -d "$(basename "$t")" 2>&1)
  if [ $? -ne 0 ] || grep -Eiq "error|invalid|checksum" <<<"$log" ; then
    echo "iasl -d $(basename "$t") failed:"; echo "$log"; exit 1
  fi
  n=$((n + 1))
done
[ "$n" -ge 5 ] || { echo "only $n ACPI tables written"; exit 1; }
log=$(dtc -I dtb -O dts -o /dev/null "$dir/vm.dtb" 2>&1)
if [ $? -ne 0 ] || [ -n "$log" ]; then echo "dtc: $log"; exit 1; fi
echo "ok: $n ACPI tables and the FDT decompile cleanly"
