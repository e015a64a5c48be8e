#!/usr/bin/env bash
# The whole test suite: every crate's unit, script, concurrency, crash and end-to-end tests,
# built once in the release profile (the profile benches and binaries use too).
# Anything the tests need is started by the tests themselves (servers on 127.0.0.1:0, temp dirs).
# Ends with one summary line, "tests: N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
# The exporter's tests start a throw-away PostgreSQL cluster from the machine's server binaries
# (and fail without them): install Debian's package when it is missing (CI runs as root).
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) >/dev/null 2>&1 \
            || echo "warning: could not install postgresql; the exporter's PostgreSQL test will fail"
    else
        echo "warning: PostgreSQL server binaries missing (apt-get install postgresql); the exporter's PostgreSQL test will fail"
    fi
fi
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
