#!/usr/bin/env bash
# expect.sh CODE PATTERN -- COMMAND...: runs COMMAND, passes if it exits with CODE and its
# combined output matches the extended regex PATTERN.
set -u
code=$1 pattern=$2
shift 3
out=$("$@" 2>&1)
rc=$?
if [ "$rc" -ne "$code" ]; then
  printf 'expected exit %s, got %s\n%s\n' "$code" "$rc" "$out"
  exit 1
fi
if ! printf '%s\n' "$out" | grep -Eq -- "$pattern"; then
  printf 'output does not match /%s/:\n%s\n' "$pattern" "$out"
  exit 1
fi
exit 0
