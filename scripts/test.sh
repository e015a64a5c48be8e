#!/usr/bin/env bash
# The whole test suite: every crate's unit, script, concurrency, crash and end-to-end tests,
# built once in the release profile (the profile benches and binaries use too).
# Anything the tests need is started by the tests themselves (servers on 127.0.0.1:0, temp dirs).
# Ends with one summary line, "tests: N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --release --workspace --lib --bins --tests "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
totals=$(awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed/) p += $(i-1); if ($i ~ /^failed/) f += $(i-1) } } END { print p + 0, f + 0 }' "$log")
passed=${totals% *}
failed=${totals#* }
echo
echo "tests: ${passed:-0} passed, ${failed:-0} failed"
exit "$status"
