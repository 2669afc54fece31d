#!/usr/bin/env bash
# Attacks a real im-server as an outsider would: schemathesis (PyPI) generates requests for every
# operation of the server's own OpenAPI document (GET /api/v1/openapi.json), valid and invalid,
# and checks every answer against it. Fails on any 5xx, any answer the document does not allow
# (status, content type, body schema), or "panicked" in the server's log.
#
# Steps: install schemathesis into a virtualenv if missing; start the debug im-server on a free
# port with a fresh SQLite file and an admin token; register a user and log in; then run
# schemathesis four times, each with a bounded number of cases per operation:
#   1. every operation without a token;
#   2. every operation with the user's token (all but logout and device revocation, which would
#      end the token), in a small world of two friends, a conversation, a group and a link;
#   3. the admin API and /metrics with the admin token;
#   4. logout and device revocation with the user's token.
# Takes a minute or two. Extra arguments go to every `st run` (e.g. --max-examples 5).
#
# Environment respected (defaults in brackets):
#   CARGO_TARGET_DIR   [target/]   where to find debug/im-server (built if missing)
#   IM_SERVER_BIN      [<target>/debug/im-server]
#   IM_ST_VENV         [/opt/im-schemathesis]   the virtualenv
#   IM_ST_PIP_SPEC     [schemathesis==4.32.5]   what pip installs into it
#   IM_FUZZ_EXAMPLES   [25]   most cases per operation and run (schemathesis --max-examples)
#   IM_FUZZ_SEED       [16]   the random seed (a fixed one: the same cases each run)
#   IM_FUZZ_OUT        [a temporary directory]   where the log and the reports go
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here/.."
started=$SECONDS
step() { printf '[api-fuzz] %s (+%ds)\n' "$*" "$((SECONDS - started))"; }
die() {
    echo "[api-fuzz] ERROR: $*" >&2
    exit 1
}

venv="${IM_ST_VENV:-/opt/im-schemathesis}"
spec="${IM_ST_PIP_SPEC:-schemathesis==4.32.5}"
examples="${IM_FUZZ_EXAMPLES:-25}"
seed="${IM_FUZZ_SEED:-16}"

if ! "$venv/bin/st" --version 2>/dev/null | grep -q "${spec#*==}"; then
    if [[ ! -x $venv/bin/python ]]; then
        step "creating virtualenv $venv"
        if ! python3 -m venv "$venv" 2>/dev/null; then
            [[ $(id -u) -eq 0 ]] || die "python3 -m venv failed; install python3-venv"
            rm -rf "$venv"
            export DEBIAN_FRONTEND=noninteractive
            apt-get update -q && apt-get install -y -q python3 python3-venv
            python3 -m venv "$venv"
        fi
    fi
    step "pip install $spec into $venv"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check "$spec"
fi
st="$venv/bin/st"

bin="${IM_SERVER_BIN:-${CARGO_TARGET_DIR:-target}/debug/im-server}"
if [[ ! -x $bin ]]; then
    step "building im-server"
    cargo build -q -p server
fi

out="${IM_FUZZ_OUT:-$(mktemp -d /tmp/im-api-fuzz.XXXXXX)}"
mkdir -p "$out"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
admin_token="api-fuzz-admin-$RANDOM$RANDOM"
log="$out/im-server.log"

step "starting $bin on $base (SQLite $out/im.db, log $log)"
IM__SERVER__BIND="127.0.0.1:$port" \
    IM__DATABASE__URL="sqlite://$out/im.db" \
    IM__AUTH__BCRYPT_COST=4 \
    IM__ADMIN__TOKEN="$admin_token" \
    RUST_LOG="${RUST_LOG:-info,im::http=warn}" \
    "$bin" >"$log" 2>&1 &
server_pid=$!
cleanup() {
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
}
trap cleanup EXIT

for _ in $(seq 1 100); do
    curl -sf "$base/readyz" >/dev/null 2>&1 && break
    kill -0 "$server_pid" 2>/dev/null || die "im-server exited: $(tail -5 "$log")"
    sleep 0.1
done
curl -sf "$base/readyz" >/dev/null || die "im-server did not become ready"

# A small world, so that the small ids the fuzzer tries name real things: users 1 (the fuzzer)
# and 2, friends, their 1:1 conversation, group 1 with an invite link, a second category.
step "registering users, a friendship, a group"
api() { # METHOD PATH TOKEN [BODY]: the JSON answer
    curl -sf -X "$1" "$base$2" -H "Authorization: Bearer $3" -H 'Content-Type: application/json' ${4:+-d "$4"}
}
field() { python3 -c "import json, sys; print(json.load(sys.stdin)$1)"; }
login() {
    local creds="{\"username\":\"$1\",\"password\":\"correct horse battery\"}"
    curl -sf "$base/api/v1/auth/register" -H 'Content-Type: application/json' -d "$creds" >/dev/null
    curl -sf "$base/api/v1/auth/login" -H 'Content-Type: application/json' -d "$creds" | field '["token"]'
}
token=$(login fuzzer)
peer=$(login fuzzpeer)
[[ -n $token && -n $peer ]] || die "no token from login"
request=$(api POST /api/v1/friend/request "$token" '{"to_user_id":2,"message":"hi"}' | field '["id"]')
api PUT "/api/v1/friend/request/$request" "$peer" '{"action":"accept"}' >/dev/null
api POST /api/v1/conversations "$token" '{"peer_user_id":2}' >/dev/null
api POST /api/v1/friend/categories "$token" '{"name":"work"}' >/dev/null
group=$(api POST /api/v1/groups "$token" '{"name":"fuzz","member_ids":[2]}' | field '["id"]')
api POST "/api/v1/groups/$group/invites" "$token" '{}' >/dev/null

checks=not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance
# No sign-up of its own: each run is authenticated exactly as its -H says (or not at all).
printf '[auth]\nauto-signup = false\n' >"$out/schemathesis.toml"
failed=0
total=0
run() {
    local name=$1
    shift
    step "schemathesis: $name"
    local status=0
    # One worker: hypothesis's lambda descriptions call ast.parse, which CPython 3.11 can fail
    # ("AST constructor recursion depth mismatch") when threads draw at once.
    # From $out: schemathesis keeps its cache (.schemathesis/) in the working directory.
    (cd "$out" && timeout 600 "$st" --config-file "$out/schemathesis.toml" --no-color run "$base/api/v1/openapi.json" \
        --url "$base" --checks "$checks" --phases examples,coverage,fuzzing \
        --max-examples "$examples" --seed "$seed" --workers 1 --request-timeout 30 \
        --report junit --report-junit-path "$out/$name.xml" \
        --output-truncate false --warnings off "$@") 2>&1 | tee "$out/$name.txt" || status=$?
    local cases
    cases=$(python3 - "$out/$name.xml" <<'PY' || echo 0
import sys, xml.etree.ElementTree as ET
print(sum(int(s.get("tests", 0)) for s in ET.parse(sys.argv[1]).getroot().iter("testsuite")))
PY
)
    local n
    n=$(grep -oE '^ +[0-9]+ generated' "$out/$name.txt" | grep -oE '[0-9]+' | tail -1 || true)
    total=$((total + ${n:-0}))
    if ((status != 0)); then
        echo "[api-fuzz] $name: FAILED (exit $status; $cases operations in the report)" >&2
        failed=1
    fi
}

run no-token
# Logout and device revocation end the token (device 1 is the fuzzer's own): they run last.
ends_token='^/api/v1/auth/(logout|devices/\{id\})$'
run user-token -H "Authorization: Bearer $token" --exclude-path-regex "$ends_token"
run admin-token -H "Authorization: Bearer $admin_token" --include-path-regex '^/(admin/|metrics$)'
run ends-token -H "Authorization: Bearer $token" --include-path-regex "$ends_token"

if grep -n "panicked" "$log"; then
    echo "[api-fuzz] the server log says \"panicked\" ($log)" >&2
    failed=1
fi
kill -0 "$server_pid" 2>/dev/null || {
    echo "[api-fuzz] im-server died during the run: $(tail -5 "$log")" >&2
    failed=1
}
step "$total test cases generated in all; reports and log in $out"
if ((failed)); then
    die "schemathesis found problems (see above)"
fi
step "passed: no server error, every answer as the spec says, no panic"
