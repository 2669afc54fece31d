#!/usr/bin/env bash
# Issue 7's idle target: TOTAL idle authenticated sessions over N single-node `im-server`
# processes, each on its own SQLite file (ports 18101..), one `im-loadgen idle` per node (the
# 20,000 open-file cap applies to every process), each from its own 4 loopback source
# addresses (127.0.K.2-5) so no generator runs short of ephemeral ports.
#
#   N=6 TOTAL=100000 HOLD=60 benches/scripts/idle-100k.sh
#
# Writes OUT/idle-100k-nodeK.json (one summary per node: sessions, RSS before/after the ramp and
# at the end, server CPU over the hold) and a total-RSS sample every 5 s to $WORK/rss.txt.
# Sum the per-node figures for the totals (docs/BENCHMARKS.md shows how).
set -u
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
N=${N:-6}; TOTAL=${TOTAL:-100000}; HOLD=${HOLD:-60}; OUT=${OUT:-$here/benches/results}
B=${BIN:-$here/target/release}
WORK=${WORK:-/tmp/im-idle-100k}
mkdir -p "$OUT" "$WORK"
# Two builds: built together, the generator's dependencies change the server binary (BENCHMARKS, "Method").
[[ -x $B/im-server && -x $B/im-loadgen ]] || (cd "$here" && cargo build --release -p server && cargo build --release -p benches)
per=$(( (TOTAL + N - 1) / N ))
pids=(); gens=()
for k in $(seq 1 $N); do
  d=$WORK/node$k; rm -rf $d; mkdir -p $d; cd $d
  IM__SERVER__BIND=127.0.0.1:$((18100+k)) IM__AUTH__BCRYPT_COST=4 IM__THROTTLE__ENABLED=false RUST_LOG=warn \
    IM__DATABASE__URL=sqlite://$d/im.db $B/im-server > $d/server.log 2>&1 &
  pids+=($!)
done
for k in $(seq 1 $N); do
  for _ in $(seq 100); do curl -fs http://127.0.0.1:$((18100+k))/healthz >/dev/null && break; sleep 0.1; done
done
echo "servers: ${pids[*]}"
for k in $(seq 1 $N); do
  $B/im-loadgen idle --url http://127.0.0.1:$((18100+k)) --sessions $per --users $((per/10)) \
    --hold $HOLD --source-ips 4 --source-base 127.0.$k.2 --prefix idle100k$k \
    --pid ${pids[$((k-1))]} --label sqlite-node$k --json --quiet > $OUT/idle-100k-node$k.json 2> $WORK/gen$k.err &
  gens+=($!)
done
# sample total RSS of servers every 5 s
( while :; do t=0; for p in "${pids[@]}"; do r=$(awk '/VmRSS/{print $2}' /proc/$p/status 2>/dev/null); t=$((t+${r:-0})); done; \
  echo "$(date +%T) servers_rss_kib=$t load=$(cut -d' ' -f1 /proc/loadavg)"; sleep 5; done ) > $WORK/rss.txt &
mon=$!
rc=0; for g in "${gens[@]}"; do wait $g || rc=$?; done
kill $mon
for p in "${pids[@]}"; do kill $p; done
echo "generators done rc=$rc"
