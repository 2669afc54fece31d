#!/usr/bin/env bash
# Cross-node against same-node latency on a two-node cluster (issue 6's benchmark).
#
#   benches/scripts/cluster-bench.sh [RATE] [DURATION]      (defaults: 500 msg/s, 20 s)
#
# Starts two release `im-server` nodes on 127.0.0.1:8091/8092 against local PostgreSQL (a fresh
# database `im_bench_cluster`) and the local Redis (namespace `bench`), then runs:
#   1. direct, both users of each pair on the same node (pairs spread over both nodes);
#   2. direct, the two users of each pair on different nodes (every message crosses Redis);
#   3. group, one 1,000-member group with all members on node 1;
#   4. the same group with its members spread over both nodes (fan-out crosses Redis once per
#      message and node).
# Results (JSON per run) go to run/cluster-bench/; a summary table to stdout.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$here"
RATE="${1:-500}"
DURATION="${2:-20}"
GROUP_RATE="${GROUP_RATE:-100}"
OUT="${OUT:-run/cluster-bench}"
PG="${PG:-postgres://postgres@127.0.0.1:5432}"
REDIS="${REDIS:-redis://127.0.0.1:6379/0}"
SERVER="${SERVER:-target/release/im-server}"
LOADGEN="${LOADGEN:-target/release/im-loadgen}"
mkdir -p "$OUT"
# Two builds: built together, the generator's dependencies change the server binary (BENCHMARKS, "Method").
[[ -x $SERVER && -x $LOADGEN ]] || { cargo build --release -p server && cargo build --release -p benches; }

psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS im_bench_cluster WITH (FORCE)" >/dev/null
psql "$PG/postgres" -qc "CREATE DATABASE im_bench_cluster" >/dev/null
redis-cli -u "$REDIS" --scan --pattern 'bench:*' | xargs -r redis-cli -u "$REDIS" del >/dev/null

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
start_node() { # id port migrate
    IM__SERVER__BIND="127.0.0.1:$2" IM__CLUSTER__NODE_ID="$1" IM__CLUSTER__REDIS_URL="$REDIS" \
    IM__CLUSTER__NAMESPACE=bench IM__DATABASE__URL="$PG/im_bench_cluster" IM__DATABASE__RUN_MIGRATIONS="$3" \
    IM__AUTH__BCRYPT_COST=4 IM__THROTTLE__ENABLED=false IM__WS__FRAMES_PER_SEC=100000 IM__WS__BURST=100000 RUST_LOG=warn \
        "$SERVER" >>"$OUT/$1.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 100); do curl -fs "http://127.0.0.1:$2/healthz" >/dev/null && return; sleep 0.1; done
    echo "node $1 did not start" >&2; exit 2
}
start_node node-1 8091 true
start_node node-2 8092 false
N1=http://127.0.0.1:8091
N2=http://127.0.0.1:8092
pidlist="${pids[0]}"

run() { # name args...
    local name=$1; shift
    echo "== $name" >&2
    "$LOADGEN" "$@" --url "$N1" --json --quiet --pid "$pidlist" >"$OUT/$name.json"
}
run direct-same  direct --nodes "$N1,$N2" --placement same  --pairs 200 --rate "$RATE" --duration "$DURATION"
run direct-cross direct --nodes "$N1,$N2" --placement cross --pairs 200 --rate "$RATE" --duration "$DURATION"
run group-one-node group --nodes "$N1"      --groups 1 --members 1000 --rate "$GROUP_RATE" --duration "$DURATION"
run group-two-nodes group --nodes "$N1,$N2" --groups 1 --members 1000 --rate "$GROUP_RATE" --duration "$DURATION"

python3 - "$OUT" <<'PY'
import json, sys, os
out = sys.argv[1]
def lat(j, *path):
    v = j
    for p in path:
        v = v.get(p, {}) if isinstance(v, dict) else {}
    return v
print(f"{'run':18} {'rate':>7} {'acked/s':>9} {'ack p50':>8} {'ack p99':>8} {'dlv p50':>8} {'dlv p99':>8} {'lost':>5} {'dup':>4}")
for name in ["direct-same", "direct-cross", "group-one-node", "group-two-nodes"]:
    p = os.path.join(out, name + ".json")
    if not os.path.exists(p):
        continue
    j = json.load(open(p))
    print(name, json.dumps({k: j[k] for k in j if k in ("throughput", "latency_ms", "counts", "ok")}))
PY
