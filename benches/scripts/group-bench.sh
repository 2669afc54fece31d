#!/usr/bin/env bash
# The group fan-out runs of benches/RESULTS-chat.md: for each rate, a fresh release server
# (SQLite, in a fresh temp dir), one `im-loadgen group` run (NGROUPS groups of MEMBERS members),
# a `top -H` snapshot and a per-thread CPU reading (from /proc) of the server over 3 s in the
# middle of the measured window, then the server is stopped. Everything on 127.0.0.1; every run bounded.
#
#   benches/scripts/group-bench.sh [OUT_DIR]        (default /tmp/im-group-bench)
#
# Knobs (environment): BIN (dir with im-server and im-loadgen; default target/release),
# RATES ("50 100 150 200 250 300"), NGROUPS (1), MEMBERS (1000), SENDERS (1), DURATION (15), WARMUP (2),
# DRAIN (20), THREADS (generator threads, 1), PORT (18090), QUIET_BUSY (25), QUIET_WAIT (120).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN=${BIN:-$ROOT/target/release}
OUT=${1:-/tmp/im-group-bench}
RATES=${RATES:-50 100 150 200 250 300}
NGROUPS=${NGROUPS:-1}
MEMBERS=${MEMBERS:-1000}
SENDERS=${SENDERS:-1}
DURATION=${DURATION:-15}
WARMUP=${WARMUP:-2}
DRAIN=${DRAIN:-20}
THREADS=${THREADS:-1}
PORT=${PORT:-18090}
URL=http://127.0.0.1:$PORT
mkdir -p "$OUT"

SERVER_PID=
WORK=

log() { printf '[group-bench] %s\n' "$*" >&2; }

# start_server: a fresh server on a fresh SQLite database; sets SERVER_PID.
start_server() {
    WORK=$(mktemp -d /tmp/im-bench-srv.XXXXXX)
    (cd "$WORK" && exec env IM__SERVER__BIND=127.0.0.1:$PORT IM__AUTH__BCRYPT_COST=4 IM__THROTTLE__ENABLED=false \
        IM__WS__FRAMES_PER_SEC=1000000 IM__WS__BURST=1000000 RUST_LOG=warn \
        "$BIN/im-server" >"$WORK/server.log" 2>&1) &
    SERVER_PID=$!
    for _ in $(seq 100); do
        curl -fs "$URL/readyz" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    log "server did not become ready:"; tail -20 "$WORK/server.log" >&2; return 1
}

# stop_server LOGCOPY: SIGTERM (SIGKILL after 20 s), keep its log, remove its directory.
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

# wait_quiet NAME: wait (at most QUIET_WAIT s) until the machine is under QUIET_BUSY percent
# busy, then note the load and the busiest processes in NAME.load.txt.
wait_quiet() {
    local name=$1 start=$SECONDS busy
    busy=$(busy_pct)
    while ((busy > ${QUIET_BUSY:-25} && SECONDS - start < ${QUIET_WAIT:-120})); do
        busy=$(busy_pct)
    done
    { echo "waited $((SECONDS - start))s; busy ${busy}%; loadavg: $(cat /proc/loadavg)"
        ps -eo pid,pcpu,etime,comm --sort=-pcpu | head -6; } >"$OUT/$name.load.txt"
}

# thread_cpu PID SECS: CPU of each thread of PID over the next SECS seconds, busiest first, from
# /proc/PID/task/*/stat (`tid name %cpu`). `top -H -p PID` shows the whole process's CPU on the
# main thread's row (TID = PID) with this procps version, so this is the per-thread reading.
thread_cpu() {
    local pid=$1 secs=$2 t tid
    local -A before
    for t in /proc/"$pid"/task/*; do
        before[${t##*/}]=$(awk '{ sub(/.*\) /, ""); print $12 + $13 }' "$t/stat" 2>/dev/null || echo 0)
    done
    sleep "$secs"
    for t in /proc/"$pid"/task/*; do
        tid=${t##*/}
        local now
        now=$(awk '{ sub(/.*\) /, ""); print $12 + $13 }' "$t/stat" 2>/dev/null || echo 0)
        printf '%s\t%s\t%s\n' "$tid" "$(cat "$t/comm" 2>/dev/null)" "$(( (now - ${before[$tid]:-0}) / secs ))"
    done | sort -t$'\t' -k3,3nr
}

for rate in $RATES; do
    name=group-$NGROUPS-$MEMBERS-$rate
    wait_quiet "$name"
    log "$name ($(head -1 "$OUT/$name.load.txt"))"
    start_server
    # Set-up (register, login, join) takes a while: start top once the window has begun, from
    # the generator's progress line, then sample 3 s in the middle of the window.
    (
        for _ in $(seq 600); do
            grep -q '\] run ' "$OUT/$name.stderr" 2>/dev/null && break
            sleep 0.5
        done
        sleep $((DURATION / 2 - 1))
        # The second frame: CPU over those 3 s (the first one is not a proper interval).
        thread_cpu "$SERVER_PID" 3 >"$OUT/$name.threads.txt" 2>&1 &
        top -H -b -n 2 -d 3 -p "$SERVER_PID" | awk '/^top -/ { n++ } n == 2' | head -25 >"$OUT/$name.top.txt" 2>&1
        wait
    ) &
    top_pid=$!
    rc=0
    timeout $((600 + WARMUP + DURATION + DRAIN)) "$BIN/im-loadgen" group --url "$URL" --groups "$NGROUPS" \
        --members "$MEMBERS" --senders "$SENDERS" --rate "$rate" --duration "$DURATION" --warmup "$WARMUP" \
        --drain "$DRAIN" --threads "$THREADS" --pid "$SERVER_PID" --label sqlite --json \
        >"$OUT/$name.json" 2>"$OUT/$name.stderr" || rc=$?
    kill "$top_pid" 2>/dev/null || true
    wait "$top_pid" 2>/dev/null || true
    echo "$rc" >"$OUT/$name.rc"
    log "$name: exit $rc"
    stop_server "$OUT/$name.server.log"
done
log "results in $OUT"
