#!/usr/bin/env bash
# The whole test suite: every crate's unit, script, concurrency, crash and end-to-end tests,
# built once in the release profile (the profile benches and binaries use too).
# Anything the tests need is started by the tests themselves (servers on 127.0.0.1:0, temp dirs).
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo test --release --workspace "$@"
