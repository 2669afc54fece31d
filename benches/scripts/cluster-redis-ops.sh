#!/usr/bin/env bash
# Redis operations per message, cross-node latency, and 3-node throughput through nginx (issue
# 14's benchmark): the same runs against a server build before and after a change, in one hour.
#
#   benches/scripts/cluster-redis-ops.sh [RATE] [DURATION]      (defaults: 500 msg/s, 20 s)
#
# SERVER (default target/release/im-server) is the build measured; LOADGEN the generator (any
# build: the protocol did not change). Uses local PostgreSQL (a fresh database
# `im_bench_ops`), a private redis-server on port 6390 (its INFO commandstats is reset before
# each run and saved after it), and nginx with deploy/nginx.conf rewritten like
# deploy/local-cluster.sh does. Runs:
#   1. direct-same   2 nodes, both users of each pair on one node (pairs spread over both);
#   2. direct-cross  2 nodes, the users of a pair on different nodes;
#   3. group-two     2 nodes, one 1,000-member group with its members spread over both nodes;
#   4. lb-step       3 nodes behind nginx, 1:1 pairs connected through nginx, the send rate
#                    stepped up until send->ack p99 passes 50 ms or anything is lost.
# ONLY="group-two" (names separated by spaces) runs some of them.
# Results (generator JSON, Redis command stats) go to OUT (default run/cluster-redis-ops), and a
# table to stdout: Redis calls per message by command, ack/delivery p50/p99, the highest rate that held.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$here"
RATE="${1:-500}"
DURATION="${2:-20}"
GROUP_RATE="${GROUP_RATE:-100}"
OUT="${OUT:-run/cluster-redis-ops}"
PG="${PG:-postgres://postgres@127.0.0.1:5432}"
REDIS_PORT="${REDIS_PORT:-6390}"
SERVER="${SERVER:-target/release/im-server}"
LOADGEN="${LOADGEN:-target/release/im-loadgen}"
STEP="${STEP:-2000:+2000:20000}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
[[ -x $SERVER && -x $LOADGEN ]] || { echo "build $SERVER and $LOADGEN first (README: load testing)" >&2; exit 2; }

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --daemonize no >"$OUT/redis.log" 2>&1 &
pids+=($!)
REDIS="redis://127.0.0.1:$REDIS_PORT/0"
rcli() { redis-cli -p "$REDIS_PORT" "$@"; }
for _ in $(seq 50); do rcli ping >/dev/null 2>&1 && break; sleep 0.1; done

fresh_db() {
    psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS im_bench_ops WITH (FORCE)" >/dev/null
    psql "$PG/postgres" -qc "CREATE DATABASE im_bench_ops" >/dev/null
    rcli flushall >/dev/null
}
node_pids=()
start_node() { # id port migrate
    IM__SERVER__BIND="127.0.0.1:$2" IM__CLUSTER__NODE_ID="$1" IM__CLUSTER__REDIS_URL="$REDIS" \
    IM__CLUSTER__NAMESPACE=bench IM__DATABASE__URL="$PG/im_bench_ops" IM__DATABASE__RUN_MIGRATIONS="$3" \
    IM__AUTH__BCRYPT_COST=4 IM__THROTTLE__ENABLED=false IM__WS__FRAMES_PER_SEC=100000 IM__WS__BURST=100000 \
    RUST_LOG=warn "$SERVER" >>"$OUT/$1.log" 2>&1 &
    pids+=($!)
    node_pids+=($!)
    for _ in $(seq 100); do curl -fs "http://127.0.0.1:$2/healthz" >/dev/null && return; sleep 0.1; done
    echo "node $1 did not start" >&2; exit 2
}
stop_nodes() {
    for p in "${node_pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${node_pids[@]}"; do wait "$p" 2>/dev/null || true; done
    node_pids=()
}
cluster() { # n
    stop_nodes
    fresh_db
    start_node node-1 8091 true
    for ((i = 2; i <= $1; i++)); do start_node "node-$i" "$((8090 + i))" false; done
    sleep 2 # one heartbeat: every node sees the others
}
# Redis command counters, sampled every 0.5 s while a run goes on: the per-message figures are
# taken over the steady part of the measured window only (no set-up, logins or drain).
sample() { # file
    while :; do
        printf '@ %s\n' "$(date +%s.%N)"
        rcli info commandstats | grep '^cmdstat_'
        sleep 0.5
    done >"$1"
}
ONLY="${ONLY:-direct-same direct-cross group-two lb-step}"
run() { # name args...
    local name=$1; shift
    [[ " $ONLY " == *" $name "* ]] || return 0
    echo "== $name" >&2
    rcli config resetstat >/dev/null
    local list sampler
    list=$(IFS=,; echo "${node_pids[*]}")
    echo "$(date +%s.%N)" >"$OUT/$name.start"
    sample "$OUT/$name.redis.txt" &
    sampler=$!
    "$LOADGEN" "$@" --json --quiet --pid "$list" >"$OUT/$name.json"
    kill "$sampler" 2>/dev/null || true
    wait "$sampler" 2>/dev/null || true
}

cluster 2
N1=http://127.0.0.1:8091
N2=http://127.0.0.1:8092
run direct-same direct --url "$N1" --nodes "$N1,$N2" --placement same --pairs 200 --rate "$RATE" --duration "$DURATION"
cluster 2
run direct-cross direct --url "$N1" --nodes "$N1,$N2" --placement cross --pairs 200 --rate "$RATE" --duration "$DURATION"
cluster 2
run group-two group --url "$N1" --nodes "$N1,$N2" --groups 1 --members 1000 --rate "$GROUP_RATE" --duration "$DURATION"

# Three nodes behind nginx, with the shipped configuration.
if [[ " $ONLY " == *" lb-step "* ]]; then
cluster 3
NGINX_PORT=8099
mkdir -p "$OUT/nginx-tmp"
nodes=""
params=$(grep -m1 '# @im:node' deploy/nginx.conf | sed -E 's/^[[:space:]]*server[[:space:]]+[^[:space:];]+[[:space:]]*([^;]*);.*/\1/')
for i in 1 2 3; do nodes+="        server 127.0.0.1:$((8090 + i)) ${params};"$'\n'; done
awk -v nodes="$nodes" -v run="$OUT" -v port="$NGINX_PORT" '
    /# @im:node[[:space:]]*$/ { if (!done) { printf "%s", nodes; done = 1 } next }
    /# @im:listen[[:space:]]*$/ { print "        listen 127.0.0.1:" port ";"; next }
    /# @im:pid[[:space:]]*$/ { print "pid " run "/nginx.pid;"; next }
    /# @im:error_log[[:space:]]*$/ { print "error_log " run "/nginx-error.log error;"; next }
    /# @im:access_log[[:space:]]*$/ { print "    access_log off;"; next }
    /# @im:temp_paths/ { n = split("client_body proxy fastcgi uwsgi scgi", k, " "); for (i = 1; i <= n; i++) print "    " k[i] "_temp_path " run "/nginx-tmp/" k[i] ";"; next }
    { print }' deploy/nginx.conf >"$OUT/nginx.conf"
user=""; [[ $(id -u) == 0 ]] && user=" user root;"
nginx -p "$OUT" -c "$OUT/nginx.conf" -e "$OUT/nginx-error.log" -g "daemon off; master_process off;$user" &
pids+=($!)
for _ in $(seq 50); do curl -fs "http://127.0.0.1:$NGINX_PORT/healthz" >/dev/null && break; sleep 0.1; done
run lb-step direct --url "http://127.0.0.1:$NGINX_PORT" --pairs 300 --threads 2 --step "$STEP" --step-p99-ms 50 \
    --duration 10 --warmup 2
fi
stop_nodes

python3 - "$OUT" "$RATE" "$DURATION" "$GROUP_RATE" <<'PY'
import json, os, re, sys
out, rate, dur, grate = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])

def samples(name):
    cur, t = None, None
    for line in open(os.path.join(out, name + ".redis.txt")):
        if line.startswith("@ "):
            if cur is not None:
                yield t, cur
            t, cur = float(line[2:]), {}
            continue
        m = re.match(r"cmdstat_(\w+):calls=(\d+)", line)
        if m and cur is not None:
            cur[m.group(1)] = int(m.group(2))
    if cur is not None:
        yield t, cur

def per_message(name, j, msg_rate):
    """Redis calls per message over the steady part of the measured window."""
    start = float(open(os.path.join(out, name + ".start")).read())
    warm = j["config"].get("warmup", 2)
    t0 = start + j["setup_secs"] + warm + 2
    t1 = t0 + dur - 4
    ss = list(samples(name))
    a = min(ss, key=lambda s: abs(s[0] - t0))
    b = min(ss, key=lambda s: abs(s[0] - t1))
    msgs = msg_rate * (b[0] - a[0])
    delta = {k: b[1].get(k, 0) - a[1].get(k, 0) for k in b[1]}
    delta = {k: v for k, v in delta.items() if v > 0 and k not in ("info", "config", "ping")}
    return {k: v / msgs for k, v in sorted(delta.items(), key=lambda kv: -kv[1])}, msgs

summary = {}
print(f"{'run':13} {'redis calls per message (by command, steady window)':64} {'ack p50/p99':>15} {'dlv p50/p99':>15}")
for name, mr in [("direct-same", rate), ("direct-cross", rate), ("group-two", grate)]:
    p = os.path.join(out, name + ".json")
    if not os.path.exists(p):
        continue
    j = json.load(open(p))
    per, msgs = per_message(name, j, mr)
    total = sum(per.values())
    lat = j.get("latency_ms", {})
    a = lat.get("ack", {})
    d = lat.get("delivered") or lat.get("delivered_last") or {}
    desc = f"{total:.2f}: " + ", ".join(f"{k} {v:.2f}" for k, v in list(per.items())[:5])
    c = j["counts"]
    bad = {k: c[k] for k in ("lost", "duplicated", "out_of_order") if c.get(k)}
    print(f"{name:13} {desc:64} {a.get('p50', 0):>6.2f}/{a.get('p99', 0):<8.2f} {d.get('p50', 0):>6.2f}/{d.get('p99', 0):<8.2f} {bad or ''}")
    summary[name] = {"redis_calls_per_message": per, "total": total, "ack_ms": a, "delivered_ms": d, "counts": c}
p = os.path.join(out, "lb-step.json")
if os.path.exists(p):
    j = json.load(open(p))
    steps = [(s["target_per_sec"], s["held"], s["latency_ms"]["ack"]["p99"], s.get("server_cpu_pct")) for s in j.get("steps", [])]
    print("lb-step (3 nodes behind nginx): highest rate that held (ack p99 <= 50 ms, nothing lost):", j.get("highest_held_rate"))
    for s in steps:
        print(f"   {s[0]:>8.0f} msg/s held={s[1]} ack p99 {s[2]:.1f} ms server CPU {s[3]} %")
    summary["lb-step"] = {"highest_held_rate": j.get("highest_held_rate"), "steps": steps}
json.dump(summary, open(os.path.join(out, "summary.json"), "w"), indent=1)
PY
