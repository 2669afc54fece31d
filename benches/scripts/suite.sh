#!/usr/bin/env bash
# The 1:1 and group series of docs/BENCHMARKS.md ("Current figures"), each on a fresh server and
# database (SQLite file, PostgreSQL database, MongoDB database), with the server's /metrics saved
# after each series.
#
#   benches/scripts/suite.sh                 # everything (~12 min)
#   OUT=/tmp/r benches/scripts/suite.sh direct-sqlite-ceiling group-sqlite-150   # some series
#
# Needs release binaries (cargo build --release -p server, then cargo build --release -p benches:
# built in one command, the generator's dependencies change the server binary), PostgreSQL on
# 127.0.0.1:5432 (trust) and, for the MongoDB series, a MongoDB-protocol server on 27017
# (scripts/services.sh starts nx-27017). Port 18080.
set -u
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$here"
R=${OUT:-benches/results/s5}; B=${BIN:-target/release}; WORK=${WORK:-/tmp/im-bench-suite}
PG=${PG:-postgres://postgres@127.0.0.1:5432}
mkdir -p "$R" "$WORK"
[[ -x $B/im-server && -x $B/im-loadgen ]] || { cargo build --release -p server && cargo build --release -p benches; }
SP=
start() { # backend: sqlite | pg | mongo
  rm -f "$WORK"/x.db*
  local url=sqlite://$WORK/x.db mongo=()
  case $1 in
    pg) psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS im_bench_suite WITH (FORCE)" -c "CREATE DATABASE im_bench_suite"
        url=$PG/im_bench_suite;;
    mongo) mongo=(IM__MESSAGES__BACKEND=mongodb IM__MESSAGES__MONGODB_URL=mongodb://127.0.0.1:27017
                  IM__MESSAGES__MONGODB_DATABASE=im_bench_suite_$$_$RANDOM);;
  esac
  env "${mongo[@]}" IM__SERVER__BIND=127.0.0.1:18080 IM__AUTH__BCRYPT_COST=4 IM__THROTTLE__ENABLED=false IM__ADMIN__TOKEN=bench \
    IM__WS__FRAMES_PER_SEC=100000 IM__WS__BURST=100000 RUST_LOG=warn IM__DATABASE__URL="$url" \
    "$B/im-server" > "$WORK/server.log" 2>&1 &
  SP=$!
  for _ in $(seq 100); do curl -sf http://127.0.0.1:18080/healthz >/dev/null && break; sleep 0.1; done
}
stop() { # name
  curl -s -H "Authorization: Bearer bench" http://127.0.0.1:18080/metrics > "$R/$1.metrics.txt"
  kill "$SP"; wait "$SP" 2>/dev/null
}
D=("$B/im-loadgen" direct --url http://127.0.0.1:18080 --pairs 200 --duration 10 --warmup 2 --json)
G=("$B/im-loadgen" group --url http://127.0.0.1:18080 --groups 1 --members 1000 --senders 4 --threads 2 --warmup 2 --json)
declare -A SERIES=(
  [direct-sqlite-p99-10ms]="sqlite D --step 500:x2:16000 --step-p99-ms 10"
  [direct-sqlite-p99-100ms]="sqlite D --step 1000:x2:16000 --step-p99-ms 100"
  [direct-sqlite-ceiling]="sqlite D --step 12000:+2000:24000 --step-p99-ms 1000"
  [direct-postgres-p99-10ms]="pg D --step 500:x2:16000 --step-p99-ms 10"
  [direct-postgres-p99-100ms]="pg D --step 1000:x2:16000 --step-p99-ms 100"
  [direct-postgres-ceiling]="pg D --step 12000:+2000:24000 --step-p99-ms 1000"
  [direct-mongodb-p99-100ms]="mongo D --step 1000:x2:8000 --step-p99-ms 100"
  [group-sqlite-p99-50ms]="sqlite G --step 25:+25:150 --step-p99-ms 50 --duration 10"
  [group-sqlite-150]="sqlite G --rate 150 --duration 15"
  [group-sqlite-300]="sqlite G --rate 300 --duration 15"
)
ORDER=(direct-sqlite-p99-10ms direct-sqlite-p99-100ms direct-sqlite-ceiling direct-postgres-p99-10ms
       direct-postgres-p99-100ms direct-postgres-ceiling direct-mongodb-p99-100ms
       group-sqlite-p99-50ms group-sqlite-150 group-sqlite-300)
(( $# )) && ORDER=("$@")
for name in "${ORDER[@]}"; do
  read -r backend gen args <<< "${SERIES[$name]}"
  start "$backend"
  echo "== $name $(date +%T)"
  if [[ $gen == D ]]; then cmd=("${D[@]}"); else cmd=("${G[@]}"); fi
  # shellcheck disable=SC2086  # $args is a list of flags
  "${cmd[@]}" $args --pid "$SP" --label "$name" > "$R/$name.json" 2> "$R/$name.err"
  echo "   exit $? -> $R/$name.json"
  stop "$name"
done
