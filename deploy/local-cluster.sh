#!/usr/bin/env bash
# IM-Server: a local cluster for developers. N im-server nodes (default 3) on loopback, sharing
# PostgreSQL, Redis and the MongoDB wire-protocol server of scripts/services.sh, with nginx in
# front (generated from deploy/nginx.conf).
#
#   deploy/local-cluster.sh up [N]      start N nodes (default 3) and nginx
#   deploy/local-cluster.sh status      each node's /readyz, nginx, /admin/v1/nodes through nginx
#   deploy/local-cluster.sh kill N      SIGKILL node N (a crash: no drain, presence left to expire)
#   deploy/local-cluster.sh restart N   stop node N gracefully (SIGTERM drains it), start it again
#   deploy/local-cluster.sh down        stop nginx and every node (SIGTERM, then SIGKILL)
#
# Layout (ports from IM_CLUSTER_PORT, default 8080):
#   nginx   127.0.0.1:8080      clients go here: http://127.0.0.1:8080/api/v1, ws://127.0.0.1:8080/ws
#   node N  127.0.0.1:808N      node id node-N
#   run dir ./run/cluster       nginx.conf, node-N.log, node-N.pid, nginx-*.log, admin-token
#
# Every node reads deploy/config/cluster-node.toml, then these environment overrides:
#   IM__SERVER__BIND=127.0.0.1:808N  IM__CLUSTER__NODE_ID=node-N  IM__SERVER__PUBLIC_URL
#   IM__DATABASE__URL=postgres://postgres@127.0.0.1:5432/im_cluster   (database created if missing)
#   IM__CLUSTER__REDIS_URL=redis://127.0.0.1:6379/0
#   IM__MESSAGES__MONGODB_URL=mongodb://127.0.0.1:27017  IM__MESSAGES__MONGODB_DATABASE=im_cluster
#   IM__DATABASE__POOL_SIZE=4  IM__ADMIN__TOKEN
# Node 1 applies the migrations; the others start after it is ready, with
# IM__DATABASE__RUN_MIGRATIONS=false. Any other IM__SECTION__KEY variable you export reaches
# every node, and your own values of the variables above win, except the per-node ones (bind,
# node id, run_migrations). For example `IM__MESSAGES__BACKEND=sql deploy/local-cluster.sh up`.
#
# Knobs (environment):
#   IM_SERVER_BIN        the binary (default target/release/im-server, built with
#                        `cargo build --release -p server` when missing; nothing is built when
#                        IM_SERVER_BIN is given)
#   IM_CLUSTER_DIR       run dir (default ./run/cluster)
#   IM_CLUSTER_PORT      nginx port; node N listens on IM_CLUSTER_PORT+N (default 8080)
#   IM_CLUSTER_DB        PostgreSQL database (default im_cluster)
#   IM_CLUSTER_WAIT      seconds to wait for a node or nginx to answer (default 60)
#   IM__ADMIN__TOKEN     admin token (default: generated once, kept in RUN_DIR/admin-token)
#   IM_SKIP_SERVICES=1   do not check/start PostgreSQL, Redis, MongoDB (scripts/services.sh)
#   RUST_LOG             passed to the nodes
# shellcheck disable=SC2030,SC2031 # start_node exports the node's IM__* variables in a subshell on purpose
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
cd "$root"

RUN_DIR="${IM_CLUSTER_DIR:-$root/run/cluster}"
case $RUN_DIR in /*) ;; *) RUN_DIR="$root/$RUN_DIR" ;; esac
CONFIG="$root/deploy/config/cluster-node.toml"
TEMPLATE="$root/deploy/nginx.conf"
WAIT="${IM_CLUSTER_WAIT:-60}"

log() { printf '[cluster] %s\n' "$*" >&2; }
die() {
    printf '[cluster] ERROR: %s\n' "$*" >&2
    exit 1
}

usage() {
    sed -n '2,11p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

# cargo from rustup, when the caller's PATH lacks it.
if ! command -v cargo >/dev/null 2>&1 && [[ -x "${CARGO_HOME:-$HOME/.cargo}/bin/cargo" ]]; then
    export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
fi
# nginx and the PostgreSQL tools live in sbin / versioned dirs on Debian.
export PATH="$PATH:/usr/sbin:/sbin"

# ------------------------------------------------------------------ settings

# Settings of the running cluster, written by `up` and read by the other commands.
STATE="$RUN_DIR/cluster.env"

load_state() {
    [[ -f $STATE ]] || die "no cluster in $RUN_DIR (run: $0 up)"
    # shellcheck source=/dev/null
    source "$STATE"
}

save_state() {
    {
        printf 'NODES=%q\n' "$NODES"
        printf 'PORT=%q\n' "$PORT"
        printf 'BIN=%q\n' "$BIN"
        printf 'DB_URL=%q\n' "$DB_URL"
    } >"$STATE"
}

node_port() { echo $((PORT + $1)); }
node_pidfile() { echo "$RUN_DIR/node-$1.pid"; }
node_log() { echo "$RUN_DIR/node-$1.log"; }
nginx_pidfile() { echo "$RUN_DIR/nginx.pid"; }

# The pid in FILE when that process is alive and is COMM (im-server or nginx).
live_pid() {
    local file=$1 comm=$2 pid
    [[ -f $file ]] || return 1
    pid=$(cat "$file" 2>/dev/null || true)
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "$comm" || return 1
    echo "$pid"
}

admin_token() {
    if [[ -n ${IM__ADMIN__TOKEN:-} ]]; then
        printf '%s\n' "$IM__ADMIN__TOKEN"
    elif [[ -s $RUN_DIR/admin-token ]]; then
        cat "$RUN_DIR/admin-token"
    fi
}

# ------------------------------------------------------------------ nodes

# HTTP status of GET URL (000 when nothing answers); the body goes to file $2 when given.
http_code() {
    curl -s -o "${2:-/dev/null}" -w '%{http_code}' --max-time 3 "$1" 2>/dev/null || true
}

# Waits until node N answers /readyz with 200 (ready or degraded); fails early if it died.
wait_ready() {
    local n=$1 port deadline code
    port=$(node_port "$n")
    deadline=$((SECONDS + WAIT))
    while ((SECONDS < deadline)); do
        code=$(http_code "http://127.0.0.1:$port/readyz")
        [[ $code == 200 ]] && return 0
        if ! live_pid "$(node_pidfile "$n")" im-server >/dev/null; then
            tail -n 30 "$(node_log "$n")" >&2 || true
            die "node-$n exited during start-up (log: $(node_log "$n"))"
        fi
        sleep 0.5
    done
    tail -n 30 "$(node_log "$n")" >&2 || true
    die "node-$n did not answer /readyz with 200 within ${WAIT}s (last: $code; log: $(node_log "$n"))"
}

# Starts node N in the background (detached, its own session), then waits for /readyz.
start_node() {
    local n=$1 migrate=$2 port token
    port=$(node_port "$n")
    if live_pid "$(node_pidfile "$n")" im-server >/dev/null; then
        die "node-$n is already running"
    fi
    token=$(admin_token)
    log "starting node-$n on 127.0.0.1:$port (run_migrations=$migrate)"
    printf '\n==== %s starting node-%s\n' "$(date -Is)" "$n" >>"$(node_log "$n")"
    # The node's environment is built in this subshell only (SC2030/SC2031 are off for that).
    (
        export IM__SERVER__BIND="127.0.0.1:$port"
        export IM__CLUSTER__NODE_ID="node-$n"
        export IM__DATABASE__RUN_MIGRATIONS="$migrate"
        export IM__SERVER__PUBLIC_URL="${IM__SERVER__PUBLIC_URL:-http://127.0.0.1:$PORT}"
        export IM__DATABASE__URL="${IM__DATABASE__URL:-$DB_URL}"
        export IM__DATABASE__POOL_SIZE="${IM__DATABASE__POOL_SIZE:-4}"
        export IM__CLUSTER__REDIS_URL="${IM__CLUSTER__REDIS_URL:-redis://127.0.0.1:6379/0}"
        export IM__MESSAGES__MONGODB_URL="${IM__MESSAGES__MONGODB_URL:-mongodb://127.0.0.1:27017}"
        export IM__MESSAGES__MONGODB_DATABASE="${IM__MESSAGES__MONGODB_DATABASE:-${IM_CLUSTER_DB:-im_cluster}}"
        export IM__ADMIN__TOKEN="$token"
        unset IM_CONFIG
        exec setsid "$BIN" --config "$CONFIG" </dev/null >>"$(node_log "$n")" 2>&1
    ) &
    echo $! >"$(node_pidfile "$n")"
    wait_ready "$n"
    log "node-$n ready (pid $(cat "$(node_pidfile "$n")"))"
}

# SIGTERM node N (it drains: clients told 1012, writes flushed, presence cleared) and waits.
stop_node() {
    local n=$1 pid deadline
    pid=$(live_pid "$(node_pidfile "$n")" im-server) || {
        rm -f "$(node_pidfile "$n")"
        return 0
    }
    kill -TERM "$pid" 2>/dev/null || true
    # server.drain_grace_secs (5) + shutdown_timeout_secs (20) in cluster-node.toml; a little more.
    deadline=$((SECONDS + 35))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
        sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "node-$n (pid $pid) still running after 30s: SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$(node_pidfile "$n")"
    log "node-$n stopped"
}

check_n() {
    [[ ${1:-} =~ ^[1-9][0-9]*$ ]] || usage
    (($1 <= NODES)) || die "the cluster has nodes 1..$NODES"
}

# ------------------------------------------------------------------ nginx

# Writes RUN_DIR/nginx.conf from deploy/nginx.conf: this cluster's nodes, port and paths.
write_nginx_conf() {
    local nodes="" n params
    # The parameters of the template's first node line (max_fails=0 ...), for every node.
    params=$(grep -m1 '# @im:node' "$TEMPLATE" | sed -E 's/^[[:space:]]*server[[:space:]]+[^[:space:];]+[[:space:]]*([^;]*);.*/\1/')
    for ((n = 1; n <= NODES; n++)); do
        nodes+="        server 127.0.0.1:$(node_port "$n") ${params};"$'\n'
    done
    mkdir -p "$RUN_DIR/nginx-tmp"
    awk -v nodes="$nodes" -v run="$RUN_DIR" -v port="$PORT" '
        BEGIN { print "# Generated by deploy/local-cluster.sh from deploy/nginx.conf: edit that file instead.\n" }
        /# @im:node[[:space:]]*$/ { if (!done) { printf "%s", nodes; done = 1 } next }
        /# @im:listen[[:space:]]*$/ { print "        listen 127.0.0.1:" port ";"; next }
        /# @im:pid[[:space:]]*$/ { print "pid " run "/nginx.pid;"; next }
        # Local tokens are throw-away: keep errors (they quote request lines, query included).
        /# @im:error_log[[:space:]]*$/ { print "error_log " run "/nginx-error.log error;"; next }
        /# @im:access_log[[:space:]]*$/ { print "    access_log " run "/nginx-access.log im_noquery;"; next }
        /# @im:temp_paths/ {
            n = split("client_body proxy fastcgi uwsgi scgi", kinds, " ")
            for (i = 1; i <= n; i++) print "    " kinds[i] "_temp_path " run "/nginx-tmp/" kinds[i] ";"
            next
        }
        { print }
    ' "$TEMPLATE" >"$RUN_DIR/nginx.conf"
}

start_nginx() {
    local bin
    bin=$(command -v nginx) || die "nginx is not installed (scripts/services.sh installs it: source it, or run im_services_nginx)"
    write_nginx_conf
    "$bin" -q -t -p "$RUN_DIR" -e "$RUN_DIR/nginx-error.log" -c "$RUN_DIR/nginx.conf" ||
        die "nginx -t failed for $RUN_DIR/nginx.conf"
    log "starting nginx on 127.0.0.1:$PORT"
    "$bin" -p "$RUN_DIR" -e "$RUN_DIR/nginx-error.log" -c "$RUN_DIR/nginx.conf" </dev/null >>"$RUN_DIR/nginx-start.log" 2>&1 ||
        die "nginx did not start (see $RUN_DIR/nginx-start.log and nginx-error.log)"
    local deadline=$((SECONDS + WAIT))
    until [[ $(http_code "http://127.0.0.1:$PORT/healthz") == 200 ]]; do
        ((SECONDS < deadline)) || die "nginx on :$PORT does not answer /healthz (see $RUN_DIR/nginx-error.log)"
        sleep 0.3
    done
}

stop_nginx() {
    local pid deadline
    pid=$(live_pid "$(nginx_pidfile)" nginx) || return 0
    kill -TERM "$pid" 2>/dev/null || true
    deadline=$((SECONDS + 10))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
        sleep 0.2
    done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
    log "nginx stopped"
}

# ------------------------------------------------------------------ commands

cmd_up() {
    NODES=${1:-3}
    [[ $NODES =~ ^[1-9][0-9]*$ ]] || usage
    PORT=${IM_CLUSTER_PORT:-8080}
    command -v curl >/dev/null 2>&1 || die "curl is needed"
    mkdir -p "$RUN_DIR"
    if [[ -f $STATE ]]; then
        (
            load_state
            for ((n = 1; n <= NODES; n++)); do
                if live_pid "$(node_pidfile "$n")" im-server >/dev/null; then
                    die "node-$n is running: the cluster is up already (run: $0 down)"
                fi
            done
            if live_pid "$(nginx_pidfile)" nginx >/dev/null; then
                die "nginx of this cluster is running (run: $0 down)"
            fi
        )
    fi

    if [[ -n ${IM_SERVER_BIN:-} ]]; then
        BIN=$IM_SERVER_BIN
        [[ -x $BIN ]] || die "IM_SERVER_BIN=$BIN is not an executable"
    else
        BIN="$root/target/release/im-server"
        if [[ ! -x $BIN ]]; then
            log "no $BIN: cargo build --release -p server"
            cargo build --release -p server
        fi
    fi
    case $BIN in /*) ;; *) BIN="$PWD/$BIN" ;; esac

    # PostgreSQL, Redis, MongoDB (nx-27017) and the nginx package.
    # shellcheck source=scripts/services.sh
    source "$root/scripts/services.sh"

    local db=${IM_CLUSTER_DB:-im_cluster}
    [[ $db =~ ^[A-Za-z0-9_]+$ ]] || die "IM_CLUSTER_DB must be [A-Za-z0-9_]"
    DB_URL="${IM__DATABASE__URL:-postgres://postgres@127.0.0.1:5432/$db}"
    if [[ -z ${IM__DATABASE__URL:-} ]]; then
        local psql=(psql -X -w -q -h 127.0.0.1 -p 5432 -U postgres -d postgres -tA)
        if [[ $("${psql[@]}" -c "select 1 from pg_database where datname = '$db'") != 1 ]]; then
            log "creating PostgreSQL database $db"
            "${psql[@]}" -c "create database $db" >/dev/null
        fi
    fi

    if [[ -z ${IM__ADMIN__TOKEN:-} && ! -s $RUN_DIR/admin-token ]]; then
        (
            umask 077
            head -c 32 /dev/urandom | base64 | tr -d '+/=\n' >"$RUN_DIR/admin-token"
        )
    fi
    save_state

    start_node 1 true
    for ((n = 2; n <= NODES; n++)); do
        start_node "$n" false
    done
    start_nginx

    cat >&2 <<EOF
[cluster] up: $NODES node(s) behind nginx
  HTTP API    http://127.0.0.1:$PORT/api/v1    (docs/API.md)
  WebSocket   ws://127.0.0.1:$PORT/ws           (docs/PROTOCOL.md)
  admin API   curl -H "Authorization: Bearer \$(cat $RUN_DIR/admin-token)" http://127.0.0.1:$PORT/admin/v1/nodes
  logs        $RUN_DIR/node-N.log, $RUN_DIR/nginx-access.log, $RUN_DIR/nginx-error.log
  then        $0 status | kill N | restart N | down
EOF
    if [[ -n ${IM__ADMIN__TOKEN:-} ]]; then
        log "admin token: from IM__ADMIN__TOKEN"
    fi
}

cmd_status() {
    load_state
    local ok=0 n pid code body token
    body=$(mktemp)
    for ((n = 1; n <= NODES; n++)); do
        if pid=$(live_pid "$(node_pidfile "$n")" im-server); then
            code=$(http_code "http://127.0.0.1:$(node_port "$n")/readyz" "$body")
            printf 'node-%s  pid %-7s 127.0.0.1:%s  readyz %s %s\n' "$n" "$pid" "$(node_port "$n")" "$code" "$(cat "$body")"
            [[ $code == 200 ]] || ok=1
        else
            printf 'node-%s  not running           127.0.0.1:%s\n' "$n" "$(node_port "$n")"
            ok=1
        fi
    done
    if pid=$(live_pid "$(nginx_pidfile)" nginx); then
        code=$(http_code "http://127.0.0.1:$PORT/readyz" "$body")
        printf 'nginx   pid %-7s 127.0.0.1:%s  readyz via nginx %s %s\n' "$pid" "$PORT" "$code" "$(cat "$body")"
        [[ $code == 200 ]] || ok=1
        token=$(admin_token)
        if [[ -n $token ]]; then
            code=$(curl -s -o "$body" -w '%{http_code}' --max-time 5 -H "Authorization: Bearer $token" \
                "http://127.0.0.1:$PORT/admin/v1/nodes" 2>/dev/null || true)
            printf 'GET /admin/v1/nodes via nginx: %s%s\n' "$code" \
                "$([[ $code == 404 ]] && echo ' (admin API off, or not in this build)')"
            if [[ $code == 200 ]] && command -v python3 >/dev/null 2>&1; then
                python3 -m json.tool <"$body" 2>/dev/null || cat "$body"
            else
                cat "$body"
                echo
            fi
        fi
    else
        printf 'nginx   not running           127.0.0.1:%s\n' "$PORT"
        ok=1
    fi
    rm -f "$body"
    return "$ok"
}

cmd_kill() {
    load_state
    check_n "${1:-}"
    local pid
    pid=$(live_pid "$(node_pidfile "$1")" im-server) || die "node-$1 is not running"
    kill -KILL "$pid"
    log "node-$1 (pid $pid) killed with SIGKILL; its sessions stop counting as online after cluster.node_ttl_secs"
}

cmd_restart() {
    load_state
    check_n "${1:-}"
    stop_node "$1"
    if (($1 == 1)); then start_node "$1" true; else start_node "$1" false; fi
}

cmd_down() {
    load_state
    local n pids=()
    stop_nginx
    # SIGTERM every node at once (each drains), then wait for each.
    for ((n = 1; n <= NODES; n++)); do
        stop_node "$n" &
        pids+=($!)
    done
    for p in "${pids[@]}"; do
        wait "$p" || true
    done
    log "down (logs kept in $RUN_DIR)"
}

case ${1:-} in
    up) shift; cmd_up "$@" ;;
    status) cmd_status ;;
    kill) cmd_kill "${2:-}" ;;
    restart) cmd_restart "${2:-}" ;;
    down) cmd_down ;;
    *) usage ;;
esac
