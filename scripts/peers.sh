#!/usr/bin/env bash
# The load test's side-by-side comparison (issue 7): this engine vs the seeds' PostgreSQL design
# vs Redis (appendfsync always and everysec), same workload, same run, same machine.
#
#   scripts/peers.sh install    apt-get the peers (postgresql, redis-server, jq)
#   scripts/peers.sh start      start PostgreSQL (as the unprivileged `postgres` user: initdb
#                               refuses root) and two Redis servers, all on 127.0.0.1
#   scripts/peers.sh compare    run the matrix; JSON summaries and a table in $OUT
#   scripts/peers.sh users      the 500k-virtual-user run (+ steady catalog traffic), server RSS
#   scripts/peers.sh stop       stop the peers
#   scripts/peers.sh all        install, start, compare, users, stop
#
# Knobs (environment): SECONDS_PER_RUN (10), CONNECTIONS (16), OVERLOAD_RATE (150000: above
# every target's capacity, so the achieved rate is the capacity), REPEATS (3: the table shows
# medians), USERS (500000), USER_RATE (4000), THINK_MS (130000: every user has begun before the
# first one ends, so all hold at once), OUT (/tmp/loadtest-peers/results).
#
# Each figure is measured twice: at OVERLOAD_RATE (throughput = capacity; latency there is
# queueing) and at half the capacity just measured (the p99 that matters).
set -euo pipefail
cd "$(dirname "$0")/.."

BASE=${BASE:-/tmp/loadtest-peers}
OUT=${OUT:-$BASE/results}
PG_PORT=${PG_PORT:-55432}
REDIS_ALWAYS_PORT=${REDIS_ALWAYS_PORT:-56379}
REDIS_EVERYSEC_PORT=${REDIS_EVERYSEC_PORT:-56380}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-10}
CONNECTIONS=${CONNECTIONS:-16}
OVERLOAD_RATE=${OVERLOAD_RATE:-150000}
USERS=${USERS:-500000}
USER_RATE=${USER_RATE:-4000}
THINK_MS=${THINK_MS:-130000}
REPEATS=${REPEATS:-3}
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/inventory-target}
# The binaries are copied out of the (shared) target directory right after the build: another
# checkout building into the same directory must not swap the server under a running comparison.
LOADTEST=$BASE/bin/loadtest
INVENTORYD=$BASE/bin/inventoryd

install_peers() {
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql redis-server jq
    # The Debian packages start their own instances on the default ports; ours run apart.
    service postgresql stop >/dev/null 2>&1 || true
    service redis-server stop >/dev/null 2>&1 || true
}

start() {
    mkdir -p "$BASE"
    if [ ! -f "$BASE/pg/PG_VERSION" ]; then
        install -d -o postgres -g postgres "$BASE/pg" "$BASE/pgsock" "$BASE/pglog"
        runuser -u postgres -- "$PG_BIN/initdb" -D "$BASE/pg" -A trust -U postgres >"$BASE/initdb.log"
    fi
    # Durable commits: fsync and synchronous_commit stay at their defaults (on).
    runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$BASE/pg" -l "$BASE/pglog/pg.log" -w start \
        -o "-p $PG_PORT -k $BASE/pgsock -c listen_addresses=127.0.0.1 -c shared_buffers=512MB -c max_connections=200"
    for spec in "$REDIS_ALWAYS_PORT always" "$REDIS_EVERYSEC_PORT everysec"; do
        set -- $spec
        mkdir -p "$BASE/redis-$2"
        redis-server --port "$1" --bind 127.0.0.1 --dir "$BASE/redis-$2" --appendonly yes \
            --appendfsync "$2" --save "" --daemonize yes --pidfile "$BASE/redis-$2.pid" \
            --logfile "$BASE/redis-$2.log"
    done
    for _ in $(seq 50); do
        redis-cli -p "$REDIS_ALWAYS_PORT" ping >/dev/null 2>&1 && redis-cli -p "$REDIS_EVERYSEC_PORT" ping >/dev/null 2>&1 && break
        sleep 0.1
    done
    echo "peers: postgres 127.0.0.1:$PG_PORT, redis always :$REDIS_ALWAYS_PORT, everysec :$REDIS_EVERYSEC_PORT"
}

stop() {
    runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$BASE/pg" -m fast stop >/dev/null 2>&1 || true
    for mode in always everysec; do
        [ -f "$BASE/redis-$mode.pid" ] && kill "$(cat "$BASE/redis-$mode.pid")" 2>/dev/null || true
    done
    stop_engine
}

build() {
    cargo build --release -p loadtest -p server --bin loadtest --bin inventoryd --bin invctl
    mkdir -p "$BASE/bin" "$OUT"
    cp "$CARGO_TARGET_DIR/release/loadtest" "$CARGO_TARGET_DIR/release/inventoryd" \
        "$CARGO_TARGET_DIR/release/invctl" "$BASE/bin/"
    echo "built at $(git rev-parse --short HEAD)$(git diff --quiet HEAD || echo '+dirty')" | tee "$OUT/build.txt"
}

ENGINE_PID=
ENGINE_ADDR=
# A fresh inventoryd (own data dir) per engine run: live holds from one run never crowd the next.
start_engine() {
    stop_engine
    local dir=$BASE/engine-$1
    rm -rf "$dir" && mkdir -p "$dir"
    "$INVENTORYD" --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 --data-dir "$dir/data" \
        >"$dir/stdout" 2>"$dir/log" &
    ENGINE_PID=$!
    for _ in $(seq 600); do
        ENGINE_ADDR=$(sed -n 's/^inventoryd listening on //p' "$dir/stdout")
        [ -n "$ENGINE_ADDR" ] && return 0
        sleep 0.1
    done
    echo "inventoryd did not start; see $dir/log" >&2
    return 1
}

stop_engine() {
    if [ -n "$ENGINE_PID" ]; then
        kill -TERM "$ENGINE_PID" 2>/dev/null || true
        wait "$ENGINE_PID" 2>/dev/null || true
        ENGINE_PID=
    fi
}

# run NAME SCENARIO TARGET-ARGS... : one loadtest at OVERLOAD_RATE, then one at half the rate
# it achieved; both summaries kept as JSON ($OUT/NAME-{max,half}-rREP.json).
run() {
    local name=$1 scenario=$2
    shift 2
    local target=("$@")
    local stock=()
    [ "$scenario" = flash-sale ] && stock=(--stock 1000000000)
    local max=$OUT/$name-max-r$REP.json
    rm -f "$max" "$OUT/$name-half-r$REP.json"
    for phase in max half; do
        local rate=$OVERLOAD_RATE
        if [ "$phase" = half ]; then
            if [ ! -f "$max" ]; then
                echo "   ($name: no result at max rate, half skipped)"
                break
            fi
            rate=$(jq -r '(.measured.units_ok_per_second / 2 / (.config.batch)) | floor | if . < 1 then 1 else . end' "$max")
        fi
        if [[ " ${target[*]} " == *" --target engine "* ]]; then
            start_engine "$name-$phase"
            target_args=("${target[@]}" --addr "http://$ENGINE_ADDR" --server-pid "$ENGINE_PID")
        else
            target_args=("${target[@]}")
        fi
        echo "== $name $phase r$REP (rate $rate/s, load average $(cut -d' ' -f1 /proc/loadavg))"
        "$LOADTEST" --quiet --scenario "$scenario" "${target_args[@]}" "${stock[@]}" \
            --rate "$rate" --duration "$SECONDS_PER_RUN" --connections "$CONNECTIONS" \
            --seed 7 --json "$OUT/$name-$phase-r$REP.json" || echo "   ($name $phase: exit $?)"
        stop_engine
    done
}

compare() {
    build
    mkdir -p "$OUT"
    # Yardstick of this run: synchronous 8 kB writes per second on this disk.
    dd if=/dev/zero of="$BASE/dd.test" bs=8k count=3000 oflag=dsync 2>&1 | tail -1 | tee "$OUT/dd.txt"
    rm -f "$BASE/dd.test"
    # The gRPC yardstick of this run: tonic echo next to GetStock and Reserve+Release, in process.
    cargo run -q --release -p server --example grpc_bench -- --seconds 5 --connections "$CONNECTIONS" \
        --in-flight 16 2>&1 | tee "$OUT/grpc_bench.txt"
    local pg="host=127.0.0.1 port=$PG_PORT user=postgres dbname=postgres"
    for REP in $(seq "$REPEATS"); do
    for scenario in flash-sale catalog; do
        run "$scenario-engine-hold" "$scenario" --target engine --unit hold
        run "$scenario-engine-hold-batch64" "$scenario" --target engine --unit hold --batch 64
        run "$scenario-engine-order" "$scenario" --target engine --unit order
        run "$scenario-engine-order-batch64" "$scenario" --target engine --unit order --batch 64
        run "$scenario-redis-always" "$scenario" --target redis --redis "127.0.0.1:$REDIS_ALWAYS_PORT" --unit hold
        run "$scenario-redis-everysec" "$scenario" --target redis --redis "127.0.0.1:$REDIS_EVERYSEC_PORT" --unit hold
        run "$scenario-postgres" "$scenario" --target postgres --postgres "$pg" --unit order
    done
    done
    table
}

users() {
    build
    mkdir -p "$OUT"
    start_engine users
    # Steady traffic next to the users: catalog holds at a modest rate for the whole run.
    local length=$(( USERS / USER_RATE + THINK_MS / 1000 ))
    "$LOADTEST" --quiet --scenario catalog --skus 10000 --target engine --addr "http://$ENGINE_ADDR" \
        --rate 1000 --duration "$length" --connections 4 --seed 8 --json "$OUT/users-steady.json" &
    local steady=$!
    # Live holds on the server, sampled every 2 s for the run's length (bounded loop).
    ( for _ in $(seq $(( length / 2 + 30 ))); do
          "$BASE/bin/invctl" --addr "http://$ENGINE_ADDR" --json status 2>/dev/null |
              jq -r '.active_reservations // empty' || true
          sleep 2
      done ) >"$OUT/users-live-holds.txt" &
    local sampler=$!
    "$LOADTEST" --quiet --scenario users --target engine --addr "http://$ENGINE_ADDR" \
        --users "$USERS" --rate "$USER_RATE" --think-ms "$THINK_MS" --connections "$CONNECTIONS" \
        --server-pid "$ENGINE_PID" --seed 9 --json "$OUT/users.json" || echo "   (users: exit $?)"
    wait "$steady" || echo "   (steady: exit $?)"
    kill "$sampler" 2>/dev/null || true
    stop_engine
    echo "users: peak live holds on the server (sampled): $(sort -n "$OUT/users-live-holds.txt" | tail -1)"
    jq -r '"users: \(.config.users) users, peak RSS \((.server_peak_rss_bytes // 0) / 1048576 | floor) MiB, p99 \(.measured.latency_micros.p99 / 1000) ms, ok \(.measured.units_ok), failed \(.measured.units_failed), check \(.check.passed)"' "$OUT/users.json"
    jq -r '"steady: p99 \(.measured.latency_micros.p99 / 1000) ms, \(.measured.units_ok_per_second | floor)/s, check \(.check.passed)"' "$OUT/users-steady.json"
}

# Medians over the repeats: units/s at overload (the capacity), p99 there, and the p99 at half
# that rate; "check" is true only if every run's check passed.
table() {
    printf '%-32s %5s %11s %11s %11s %11s %6s  %s\n' run reps "units/s" "p99 ms" "half rate" "half p99" check errors
    for name in $(ls "$OUT" | sed -n 's/-max-r[0-9]*\.json$//p' | sort -u); do
        jq -s -r --arg name "$name" '
            def median: sort | if length == 0 then null else .[(length - 1) / 2 | floor] end;
            (map(select(.phase == "max")) | map(.s)) as $max
            | (map(select(.phase == "half")) | map(.s)) as $half
            | [$name, ($max | length),
               ($max | map(.measured.units_ok_per_second) | median | floor),
               ($max | map(.measured.latency_micros.p99 / 1000) | median),
               ($half | map(.measured.units_ok_per_second) | median | floor),
               ($half | map(.measured.latency_micros.p99 / 1000) | median),
               (($max + $half) | map(.check.passed) | all),
               ($max | map(.measured.errors_by_code) | add | tojson)]
            | @tsv' \
            <(for f in "$OUT/$name"-max-r*.json; do jq '{phase: "max", s: .}' "$f"; done
              for f in "$OUT/$name"-half-r*.json; do [ -f "$f" ] && jq '{phase: "half", s: .}' "$f"; done) |
            awk -F'\t' '{ printf "%-32s %5s %11s %11s %11s %11s %6s  %s\n", $1, $2, $3, $4, $5, $6, $7, $8 }'
    done | tee "$OUT/table.txt"
}

case "${1:-}" in
    install) install_peers ;;
    start) start ;;
    stop) stop ;;
    compare) compare ;;
    users) users ;;
    table) table ;;
    all) install_peers; start; trap stop EXIT; compare; users ;;
    *) sed -n '2,19p' "$0"; exit 2 ;;
esac
