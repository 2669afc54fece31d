#!/usr/bin/env bash
# Instructions per persisted 1:1 message (issue 19): a release server on a fresh SQLite file runs
# under `valgrind --tool=callgrind` (counts instructions, not seconds: the same total for the
# same inputs whatever else the machine does); `im-loadgen direct` sends 20 pairs at 100 msg/s,
# first a warm-up run, then a 10 s and a 30 s run with the counters dumped after each. The
# figure is (I_30 - I_10) / (messages_30 - messages_10): set-up, log-ins and start-up cancel out.
# Each dump waits a second after its run so that background work (the search indexer, the
# checkpointer) of that run's messages is in it.
#
#   benches/scripts/callgrind-direct.sh LABEL [OUT_DIR]     (default /tmp/im-callgrind)
#
# Knobs (environment): BIN (dir with im-server and im-loadgen; default target/release),
# PORT (18097), PAIRS (20), RATE (100), SERVER_ENV (extra VAR=value settings for the server).
# Prints one line: LABEL instructions_per_message; the callgrind files stay in OUT_DIR
# (callgrind_annotate OUT_DIR/LABEL.PID.out.2 for the 30 s run's breakdown).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
LABEL=${1:?usage: callgrind-direct.sh LABEL [OUT_DIR]}
OUT=${2:-/tmp/im-callgrind}
BIN=${BIN:-$ROOT/target/release}
PORT=${PORT:-18097}
PAIRS=${PAIRS:-20}
RATE=${RATE:-100}
URL=http://127.0.0.1:$PORT
mkdir -p "$OUT"
command -v valgrind >/dev/null || { echo "valgrind is not installed (apt-get install valgrind)" >&2; exit 1; }

WORK=$(mktemp -d /tmp/im-cg.XXXXXX)
# shellcheck disable=SC2086
(cd "$WORK" && exec env IM__SERVER__BIND=127.0.0.1:$PORT IM__AUTH__BCRYPT_COST=4 IM__THROTTLE__ENABLED=false \
    IM__WS__FRAMES_PER_SEC=1000000 IM__WS__BURST=1000000 RUST_LOG=warn ${SERVER_ENV:-} \
    valgrind --tool=callgrind --callgrind-out-file="$OUT/$LABEL.%p.out" "$BIN/im-server" \
    >"$OUT/$LABEL.server.log" 2>&1) &
SERVER_PID=$!  # the subshell execs env, env execs valgrind: one pid
cleanup() {
    [[ -n $SERVER_PID ]] && kill -TERM "$SERVER_PID" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
for _ in $(seq 600); do
    curl -fs "$URL/readyz" >/dev/null 2>&1 && break
    sleep 0.2
done
curl -fs "$URL/readyz" >/dev/null || { echo "server did not start" >&2; tail "$OUT/$LABEL.server.log" >&2; exit 1; }

run() { # run SECS NAME
    "$BIN/im-loadgen" direct --url "$URL" --pairs "$PAIRS" --rate "$RATE" --duration "$1" --warmup 1 \
        --drain 60 --label "$LABEL" --json >"$OUT/$LABEL-$2.json" 2>"$OUT/$LABEL-$2.stderr"
    sleep 1
}
run 5 warm
callgrind_control -z "$SERVER_PID" >/dev/null
run 10 10
callgrind_control -d "$LABEL-10" "$SERVER_PID" >/dev/null
run 30 30
callgrind_control -d "$LABEL-30" "$SERVER_PID" >/dev/null
sleep 1
summary() { grep -m1 '^summary:' "$1" | awk '{print $2}'; }
acked() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['counts']['acked'])" "$1"; }
f10=$(ls "$OUT/$LABEL".*.out.1) f30=$(ls "$OUT/$LABEL".*.out.2)
python3 - "$LABEL" "$(summary "$f10")" "$(summary "$f30")" "$(acked "$OUT/$LABEL-10.json")" "$(acked "$OUT/$LABEL-30.json")" <<'PY'
import sys
label, i10, i30, m10, m30 = sys.argv[1], *map(int, sys.argv[2:])
print(f"{label} {round((i30 - i10) / (m30 - m10)):,} instructions per message ({m30 - m10} messages)")
PY
