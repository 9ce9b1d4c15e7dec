#!/usr/bin/env bash
# Style checks that keep the tree honest: clang-format, file size, and ARCHITECTURE.md's
# code map naming only paths that exist.
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
if [ -f ARCHITECTURE.md ]; then
  for p in $(grep -oE '`(src|tests|fuzz|bench|docs|scripts|examples|include)/[^` ]*`' ARCHITECTURE.md | tr -d '`'); do
    [ -e "$p" ] || { echo "source-checks: ARCHITECTURE.md names $p, which does not exist"; rc=1; }
  done
fi
[ $rc -eq 0 ] && echo "source-checks: ok"
exit $rc
