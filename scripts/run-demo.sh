#!/usr/bin/env bash
# Boots the demo VM (examples/demo.qvmconf) with the project's test guest on this console.
set -euo pipefail
cd "$(dirname "$0")/.."
QVM=build-release/src/app/qvm
export QVM_GUEST=${QVM_GUEST:-build-release/tests/guest/kit.elf}
echo "run-demo: $($QVM --version)"
# Until the VM core lands (issue 4) the demo validates and prints the VM instead of booting it.
exec "$QVM" @examples/demo.qvmconf dryrun
