#!/usr/bin/env bash
# Message search latency over a large history (issue 18): for each store, a fresh release server
# on a fresh database, filled with MESSAGES messages through its own WebSocket API, then
# `im-loadgen search` times GET /api/v1/search/messages per query class (rare, common, Chinese,
# two-character, absent) over all my conversations and over one. Everything on 127.0.0.1.
#
#   benches/scripts/search-bench.sh [OUT_DIR]        (default /tmp/im-search-bench)
#
# Knobs (environment): BIN (dir with im-server and im-loadgen; default target/release),
# BACKENDS ("sqlite postgres mongodb"), MESSAGES (1000000), PAIRS (100), QUERIES (200),
# PORT (18085), PG_URL (postgres://postgres@127.0.0.1:5432), MONGO_URL (mongodb://127.0.0.1:27017).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN=${BIN:-$ROOT/target/release}
OUT=${1:-/tmp/im-search-bench}
BACKENDS=${BACKENDS:-sqlite postgres mongodb}
MESSAGES=${MESSAGES:-1000000}
PAIRS=${PAIRS:-100}
QUERIES=${QUERIES:-200}
PORT=${PORT:-18085}
PG_URL=${PG_URL:-postgres://postgres@127.0.0.1:5432}
MONGO_URL=${MONGO_URL:-mongodb://127.0.0.1:27017}
URL=http://127.0.0.1:$PORT
mkdir -p "$OUT"

SERVER_PID= WORK= PG_DB= MONGO_DB=
log() { printf '[search-bench] %s\n' "$*" >&2; }

start_server() {
    local backend=$1
    WORK=$(mktemp -d /tmp/im-bench-srv.XXXXXX)
    local env=(IM__SERVER__BIND=127.0.0.1:$PORT IM__AUTH__BCRYPT_COST=4 IM__THROTTLE__ENABLED=false
        IM__WS__FRAMES_PER_SEC=1000000 IM__WS__BURST=1000000 RUST_LOG=warn)
    case $backend in
        sqlite) ;;
        postgres)
            PG_DB=im_search_$$_$RANDOM
            psql "$PG_URL/postgres" -qAtc "CREATE DATABASE $PG_DB" >/dev/null
            env+=(IM__DATABASE__URL=$PG_URL/$PG_DB) ;;
        mongodb)
            MONGO_DB=im_search_$$_$RANDOM
            env+=(IM__MESSAGES__BACKEND=mongodb IM__MESSAGES__MONGODB_URL=$MONGO_URL
                IM__MESSAGES__MONGODB_DATABASE=$MONGO_DB) ;;
        *) log "unknown backend $backend"; return 1 ;;
    esac
    (cd "$WORK" && exec env "${env[@]}" "$BIN/im-server" >"$WORK/server.log" 2>&1) &
    SERVER_PID=$!
    for _ in $(seq 100); do
        curl -fs "$URL/readyz" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    log "server did not become ready:"; tail -20 "$WORK/server.log" >&2; return 1
}

stop_server() {
    local keep=$1
    if [[ -n $SERVER_PID ]]; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 300); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=
    fi
    if [[ -n $WORK ]]; then
        du -sh "$WORK" >"$keep.du" 2>/dev/null || true
        cp "$WORK/server.log" "$keep" 2>/dev/null || true
        rm -rf "$WORK"
        WORK=
    fi
    if [[ -n $PG_DB ]]; then
        psql "$PG_URL/postgres" -qAtc "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" >/dev/null || true
        PG_DB=
    fi
    if [[ -n $MONGO_DB ]]; then
        "${MONGOSH:-/opt/im-nx27017/bin/python}" - "$MONGO_URL" "$MONGO_DB" <<'PY' || true
import sys, pymongo
pymongo.MongoClient(sys.argv[1]).drop_database(sys.argv[2])
PY
        MONGO_DB=
    fi
}
trap 'stop_server /dev/null' EXIT

for backend in $BACKENDS; do
    name=search-$backend-$MESSAGES
    log "$name (loadavg $(cat /proc/loadavg))"
    start_server "$backend"
    rc=0
    "$BIN/im-loadgen" search --url "$URL" --pairs "$PAIRS" --messages "$MESSAGES" --queries "$QUERIES" \
        --pid "$SERVER_PID" --label "$backend" --json >"$OUT/$name.json" 2>"$OUT/$name.stderr" || rc=$?
    echo "$rc" >"$OUT/$name.rc"
    log "$name: exit $rc"
    stop_server "$OUT/$name.server.log"
done
log "results in $OUT"
