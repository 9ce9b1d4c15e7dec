#!/usr/bin/env bash
# The whole test suite (what `make check` and CI run):
#   1. strict build with ASan/UBSan; unit, component and system tests through CTest
#      (system tests boot the project's test guests under qvm and under QEMU with KVM);
#   2. libFuzzer targets (clang), each for a bounded time (FUZZ_SECONDS: 20, check-full 300),
#      as many at a time as there are cores;
#   3. source checks (clang-format, file size, architecture map).
# QVM_CHECK_FULL=1 (make check-full) also runs the CTest tests labelled "full".
# Prints one closing line "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
JOBS=${JOBS:-$(nproc)}
# Seconds per fuzz target: a smoke run in `make check`; check-full runs each target longer.
FUZZ_SECONDS=${FUZZ_SECONDS:-20}
[ "${QVM_CHECK_FULL:-0}" = 1 ] && FUZZ_SECONDS=${QVM_FULL_FUZZ_SECONDS:-300}
passed=0
failed=0
note() { printf '\n== %s\n' "$*"; }
result() {  # name status
  if [ "$2" -eq 0 ]; then passed=$((passed + 1)); echo "PASS $1"; else failed=$((failed + 1)); echo "FAIL $1"; fi
}

if [ ! -e /dev/kvm ]; then
  echo "check: /dev/kvm is missing: system tests cannot run (they never skip silently)" >&2
fi

note "build (gcc, ASan+UBSan)"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Debug -DQVM_SANITIZE=ON >/dev/null &&
  cmake --build build -j "$JOBS"
build_rc=$?
result build "$build_rc"

if [ "$build_rc" -eq 0 ]; then
  note "ctest"
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  # Tests labelled "full" (long soaks of the virtual test host) run only in `make check-full`.
  select=(-LE full)
  [ "${QVM_CHECK_FULL:-0}" = 1 ] && select=()
  (cd build && ctest --output-on-failure -j "$JOBS" --timeout 600 "${select[@]}") 2>&1 | tee build/ctest.log
  ctest_rc=${PIPESTATUS[0]}
  # Count CTest's own tests in the closing line ("N% tests passed, F tests failed out of T").
  line=$(grep -Eo '[0-9]+ tests? failed out of [0-9]+' build/ctest.log | tail -1)
  if [ -n "$line" ]; then
    nfail=$(echo "$line" | awk '{print $1}')
    total=$(echo "$line" | awk '{print $NF}')
    passed=$((passed + total - nfail))
    failed=$((failed + nfail))
  elif [ "$ctest_rc" -ne 0 ]; then
    failed=$((failed + 1))
  fi
  [ "$ctest_rc" -eq 0 ] || echo "FAIL ctest"
fi

note "release build (what make run uses)"
cmake -S . -B build-release -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null &&
  cmake --build build-release -j "$JOBS" --target qvm qvm-test-guest
result release-build $?

note "fuzz (clang libFuzzer, ${FUZZ_SECONDS}s per target)"
cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang \
  -DCMAKE_CXX_COMPILER=clang++ -DQVM_FUZZ=ON >/dev/null && cmake --build build-fuzz -j "$JOBS"
fuzz_build=$?
result fuzz-build "$fuzz_build"
# One fuzz run: its log and any artifact stay in $2 for the report below.
fuzz_one() {  # TARGET WORKDIR
  local corpus=$ROOT/fuzz/corpus/$(basename "$1" | sed 's/^fuzz_//')
  mkdir -p "$2/in"
  [ -d "$corpus" ] && cp -r "$corpus"/. "$2/in"/
  "$1" -max_total_time="$FUZZ_SECONDS" -rss_limit_mb=2048 -max_len=8192 -print_final_stats=0 \
    -artifact_prefix="$2/" "$2/in" >"$2/log" 2>&1
  echo $? >"$2/rc"
}
if [ "$fuzz_build" -eq 0 ]; then
  # Each libFuzzer run is single-threaded: run $JOBS of them at a time.
  fuzz_root=$(mktemp -d)
  running=0
  for f in build-fuzz/fuzz/fuzz_*; do
    fuzz_one "$f" "$fuzz_root/$(basename "$f")" &
    running=$((running + 1))
    if [ "$running" -ge "$JOBS" ]; then
      wait -n
      running=$((running - 1))
    fi
  done
  wait
  for f in build-fuzz/fuzz/fuzz_*; do
    name=$(basename "$f")
    d=$fuzz_root/$name
    rc=$(cat "$d/rc" 2>/dev/null || echo 1)
    if [ "$rc" -ne 0 ]; then
      tail -40 "$d/log"
      # Keep what failed so it can become a regression test (fuzz/corpus/ + a unit test).
      mkdir -p build-fuzz/artifacts
      cp "$d"/crash-* "$d"/leak-* "$d"/timeout-* "$d"/oom-* build-fuzz/artifacts/ 2>/dev/null
      ls build-fuzz/artifacts
    fi
    result "$name" "$rc"
  done
  rm -rf "$fuzz_root"
fi

note "source checks"
scripts/source-checks.sh
result source-checks $?

echo
echo "check: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
