#!/usr/bin/env bash
# Time to recover from a node killed with SIGKILL: three nodes behind nginx, four senders
# streaming 1:1 messages; the node owning the first conversation is killed mid-stream, and the
# figure is how long after the kill the first message sent after it was acked (the owner's
# liveness key expires, another node claims the conversation, takes its epoch and loads it;
# the client resends with the same id). It is the multi-node test
# `faults::a_node_killed_mid_stream_loses_and_doubles_nothing`, run RUNS times with the test
# settings (heartbeat 1 s, node TTL 3 s) and RUNS times with the production defaults (2 s, 10 s).
#
#   benches/scripts/failover.sh [RUNS]        (default 5)
#
# Needs what the multi-node tests need (PostgreSQL, redis-server, nginx: scripts/services.sh).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
RUNS="${1:-5}"
export IM_TEST_POSTGRES_URL="${IM_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
cargo test -p server --test cluster --no-run >/dev/null 2>&1 || cargo test -p server --test cluster --no-run
run() { # heartbeat ttl
    for _ in $(seq "$RUNS"); do
        IM_TEST_HEARTBEAT_SECS=$1 IM_TEST_NODE_TTL_SECS=$2 cargo test -q -p server --test cluster \
            a_node_killed_mid_stream -- --nocapture 2>&1 | grep '^failover:' || echo "failover: run failed"
    done
}
run 1 3
run 2 10
