#!/usr/bin/env bash
# Runs the whole test suite: makes sure PostgreSQL, Redis and the MongoDB wire-protocol
# server answer (scripts/services.sh), points the tests at them, then
#   cargo test --workspace --all-targets [extra args...]
# then schemathesis against the im-server just built (scripts/api-fuzz.sh: every endpoint of its
# OpenAPI document, with and without tokens, on SQLite), and then the web client's tests
# (scripts/web-test.sh: unit tests, the check of the committed web/dist, and the end-to-end suite
# in headless Chromium against the im-server just built).
#
# Works on this machine and, as root, on a fresh Debian 12 machine (services.sh installs
# what is missing). Extra arguments go to cargo test. Note that with --workspace and
# --all-targets cargo ignores -p and --test; narrow a run with a test-name filter:
#   scripts/test.sh -- message_store --nocapture
#
# Environment respected (defaults in brackets):
#   IM_TEST_POSTGRES_URL [postgres://postgres@127.0.0.1:5432/postgres]
#   IM_TEST_MONGODB_URL  [mongodb://127.0.0.1:27017]
#   IM_TEST_S3_URL       [http://127.0.0.1:5055]
#   CARGO_TARGET_DIR     [cargo's default, target/]
#   CARGO_BUILD_JOBS     [2]
#   IM_SKIP_SERVICES=1   skip scripts/services.sh
#   IM_SKIP_FUZZ=1       skip scripts/api-fuzz.sh
#   IM_SKIP_WEB=1        skip scripts/web-test.sh
# Tests that need Redis (server/tests/cluster) start a private redis-server each (they kill and
# restart it), and nginx from PATH or /usr/sbin; services.sh installs both binaries.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here/.."

# cargo from rustup, when the caller's PATH lacks it (e.g. a non-login root shell).
if ! command -v cargo >/dev/null 2>&1 && [[ -x "${CARGO_HOME:-$HOME/.cargo}/bin/cargo" ]]; then
    export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
fi

# shellcheck source=scripts/services.sh
source "$here/services.sh"

export IM_TEST_POSTGRES_URL="${IM_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
export IM_TEST_MONGODB_URL="${IM_TEST_MONGODB_URL:-mongodb://127.0.0.1:27017}"
export IM_TEST_S3_URL="${IM_TEST_S3_URL:-http://127.0.0.1:5055}"
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}"
# Tests run with libtest's default parallelism.
unset RUST_TEST_THREADS

echo "[test] IM_TEST_POSTGRES_URL=$IM_TEST_POSTGRES_URL"
echo "[test] IM_TEST_MONGODB_URL=$IM_TEST_MONGODB_URL"
echo "[test] IM_TEST_S3_URL=$IM_TEST_S3_URL"
echo "[test] CARGO_BUILD_JOBS=$CARGO_BUILD_JOBS CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-<default>}"
echo "[test] cargo test --workspace --all-targets $*"
cargo test --workspace --all-targets "$@"

if [[ "${IM_SKIP_FUZZ:-}" != 1 ]]; then
    echo "[test] scripts/api-fuzz.sh"
    "$here/api-fuzz.sh"
fi

if [[ "${IM_SKIP_WEB:-}" != 1 ]]; then
    echo "[test] scripts/web-test.sh"
    "$here/web-test.sh"
fi
