#!/usr/bin/env bash
# Boots the demo VM (examples/demo.qvmconf) on this console: the project's test guest runs its
# device tests under qvm, prints them on the emulated 16550 (COM1 -> this terminal) and ends the
# VM through the testdev port (exit code 32 + its status: 32 = every test passed).
set -uo pipefail
cd "$(dirname "$0")/.."
QVM=build-release/src/app/qvm
export QVM_GUEST=${QVM_GUEST:-build-release/tests/guest/qvm-test-guest.elf}
echo "run-demo: $($QVM --version)"
echo "run-demo: qvm @examples/demo.qvmconf"
"$QVM" @examples/demo.qvmconf
rc=$?
case $rc in
  32) echo "run-demo: the guest reported every test passed (qvm exit code 32 = testdev status 0)"; exit 0 ;;
  0) echo "run-demo: the guest shut down"; exit 0 ;;
  *) echo "run-demo: qvm exited with $rc (see docs/exit-codes.md)"; exit "$rc" ;;
esac
