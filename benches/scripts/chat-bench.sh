#!/usr/bin/env bash
# The chat benchmark matrix of benches/RESULTS-chat.md: for each message store (SQL on SQLite,
# SQL on PostgreSQL, MongoDB) and each rate, a fresh release server on a fresh database, one
# `im-loadgen direct` run, then the server is stopped and the database dropped. Then `login` at
# bcrypt cost 12 and 10 (SQLite). Everything on 127.0.0.1; every run bounded.
#
#   benches/scripts/chat-bench.sh [OUT_DIR]        (default /tmp/im-chat-bench)
#
# Knobs (environment): BIN (dir with im-server and im-loadgen; default target/release),
# BACKENDS ("sqlite postgres mongodb"; " " for none), RATES ("1000 2000 5000 10000 20000"), PAIRS (200),
# DURATION (20), WARMUP (2), DRAIN (20), PORT (18080), LOGIN_COSTS ("12 10"), LOGIN_SECS (20),
# PG_URL (postgres://postgres@127.0.0.1:5432), MONGO_URL (mongodb://127.0.0.1:27017),
# LOADGEN_ARGS (more `im-loadgen direct` flags, e.g. "--react-pct 10 --edit-pct 2" for the mixed run).
# Needs PostgreSQL and the MongoDB wire server up (bash scripts/services.sh).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN=${BIN:-$ROOT/target/release}
OUT=${1:-/tmp/im-chat-bench}
BACKENDS=${BACKENDS:-sqlite postgres mongodb}
RATES=${RATES:-1000 2000 5000 10000 20000}
PAIRS=${PAIRS:-200}
DURATION=${DURATION:-20}
WARMUP=${WARMUP:-2}
DRAIN=${DRAIN:-20}
PORT=${PORT:-18080}
LOGIN_COSTS=${LOGIN_COSTS:-12 10}
LOGIN_SECS=${LOGIN_SECS:-20}
PG_URL=${PG_URL:-postgres://postgres@127.0.0.1:5432}
MONGO_URL=${MONGO_URL:-mongodb://127.0.0.1:27017}
URL=http://127.0.0.1:$PORT
mkdir -p "$OUT"

SERVER_PID=
WORK=
PG_DB=
MONGO_DB=

log() { printf '[chat-bench] %s\n' "$*" >&2; }

# start_server BACKEND COST: a fresh server on a fresh database; sets SERVER_PID.
start_server() {
    local backend=$1 cost=$2
    WORK=$(mktemp -d /tmp/im-bench-srv.XXXXXX)
    local env=(IM__SERVER__BIND=127.0.0.1:$PORT IM__AUTH__BCRYPT_COST=$cost IM__THROTTLE__ENABLED=false
        IM__WS__FRAMES_PER_SEC=1000000 IM__WS__BURST=1000000 RUST_LOG=warn)
    case $backend in
        sqlite) ;;
        postgres)
            PG_DB=im_bench_$$_$RANDOM
            psql "$PG_URL/postgres" -qAtc "CREATE DATABASE $PG_DB" >/dev/null
            env+=(IM__DATABASE__URL=$PG_URL/$PG_DB)
            ;;
        mongodb)
            MONGO_DB=im_bench_$$_$RANDOM
            env+=(IM__MESSAGES__BACKEND=mongodb IM__MESSAGES__MONGODB_URL=$MONGO_URL
                IM__MESSAGES__MONGODB_DATABASE=$MONGO_DB)
            ;;
        *) log "unknown backend $backend (sqlite, postgres or mongodb)"; return 1 ;;
    esac
    (cd "$WORK" && exec env "${env[@]}" "$BIN/im-server" >"$WORK/server.log" 2>&1) &
    SERVER_PID=$!
    for _ in $(seq 100); do
        curl -fs "$URL/readyz" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    log "server did not become ready:"; tail -20 "$WORK/server.log" >&2; return 1
}

# stop_server LOGCOPY: SIGTERM (SIGKILL after 20 s), keep its log, drop its database.
stop_server() {
    local keep=$1
    if [[ -n $SERVER_PID ]]; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 200); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$SERVER_PID" 2>/dev/null; then
            log "server $SERVER_PID still up after 20 s: SIGKILL"
            kill -KILL "$SERVER_PID" 2>/dev/null || true
        fi
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=
    fi
    [[ -n $WORK ]] && cp "$WORK/server.log" "$keep" 2>/dev/null || true
    [[ -n $WORK ]] && rm -rf "$WORK"
    WORK=
    if [[ -n $PG_DB ]]; then
        psql "$PG_URL/postgres" -qAtc "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" >/dev/null || true
        PG_DB=
    fi
    if [[ -n $MONGO_DB ]]; then
        "${MONGOSH:-/opt/im-nx27017/bin/python}" - "$MONGO_URL" "$MONGO_DB" <<'EOF' || true
import sys, pymongo
pymongo.MongoClient(sys.argv[1]).drop_database(sys.argv[2])
EOF
        MONGO_DB=
    fi
}
trap 'stop_server /dev/null' EXIT

# busy_pct: percent of all CPUs busy over the next 2 seconds (from /proc/stat).
busy_pct() {
    local a b
    a=($(head -1 /proc/stat)); sleep 2; b=($(head -1 /proc/stat))
    local idle=$(((b[4] + b[5]) - (a[4] + a[5]))) total=0 i
    for i in 1 2 3 4 5 6 7 8; do total=$((total + b[i] - a[i])); done
    echo $(((total - idle) * 100 / (total > 0 ? total : 1)))
}

# wait_quiet NAME: other work on this machine (builds, test suites) skews results; wait (at
# most QUIET_WAIT s, default 120) until the machine is under QUIET_BUSY percent busy (default
# 25), then note the load and the busiest processes in NAME.load.txt.
wait_quiet() {
    local name=$1 start=$SECONDS busy
    busy=$(busy_pct)
    while ((busy > ${QUIET_BUSY:-25} && SECONDS - start < ${QUIET_WAIT:-120})); do
        busy=$(busy_pct)
    done
    { echo "waited $((SECONDS - start))s; busy ${busy}%; loadavg: $(cat /proc/loadavg)"
        ps -eo pid,pcpu,etime,comm --sort=-pcpu | head -6; } >"$OUT/$name.load.txt"
}

for backend in $BACKENDS; do
    for rate in $RATES; do
        name=direct-$backend-$rate
        wait_quiet "$name"
        log "$name ($(head -1 "$OUT/$name.load.txt"))"
        start_server "$backend" 4
        # top -H for a few seconds in the middle of the measured window.
        (sleep $((WARMUP + DURATION / 2 + 3)); top -H -b -n 1 -d 3 -p "$SERVER_PID" | head -25 >"$OUT/$name.top.txt" 2>&1) &
        top_pid=$!
        rc=0
        "$BIN/im-loadgen" direct --url "$URL" --pairs "$PAIRS" --rate "$rate" --duration "$DURATION" \
            --warmup "$WARMUP" --drain "$DRAIN" --pid "$SERVER_PID" --label "$backend" --json ${LOADGEN_ARGS:-} \
            >"$OUT/$name.json" 2>"$OUT/$name.stderr" || rc=$?
        wait "$top_pid" 2>/dev/null || true
        echo "$rc" >"$OUT/$name.rc"
        log "$name: exit $rc"
        stop_server "$OUT/$name.server.log"
    done
done

for cost in $LOGIN_COSTS; do
    name=login-cost$cost
    wait_quiet "$name"
    log "$name ($(head -1 "$OUT/$name.load.txt"))"
    start_server sqlite "$cost"
    rc=0
    "$BIN/im-loadgen" login --url "$URL" --users 16 --concurrency 8 --duration "$LOGIN_SECS" \
        --pid "$SERVER_PID" --label "sqlite, bcrypt cost $cost" --json \
        >"$OUT/$name.json" 2>"$OUT/$name.stderr" || rc=$?
    echo "$rc" >"$OUT/$name.rc"
    stop_server "$OUT/$name.server.log"
done
log "results in $OUT"
