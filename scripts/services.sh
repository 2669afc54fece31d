#!/usr/bin/env bash
# Makes sure the services the test suite talks to answer on this machine:
#   PostgreSQL  127.0.0.1:5432   user postgres, trust auth over TCP
#   Redis       127.0.0.1:6379
#   MongoDB     127.0.0.1:27017  wire protocol served by nx-27017 (PyPI), in memory
#   S3          127.0.0.1:5055   S3 protocol served by moto's server (PyPI `moto[server]`), in memory
# and that nginx is installed (not started: tests and deploy/local-cluster.sh run their own
# nginx with their own config; the system service is never started here).
#
# Idempotent: a service that already answers is left alone. One that does not is
# started, and installed first (apt-get, Debian 12) when it is missing.
#
# Run it (`bash scripts/services.sh`) or source it (`source scripts/services.sh`,
# as scripts/test.sh does): sourcing defines the im_services_* functions, runs
# im_services_up and returns its status without changing the caller's shell options.
#
# Knobs (environment):
#   IM_SKIP_SERVICES=1     do nothing (services are provided some other way)
#   IM_SERVICE_WAIT=30     seconds to wait for each service to answer
#   IM_NX_VENV             virtualenv for nx-27017 (default /opt/im-nx27017)
#   IM_NX_PIP_SPEC         what pip installs into it (default: pinned versions below)
#   IM_NX_LOG, IM_NX_PID   nx-27017 log and pid files (default /tmp/nx_27017.{log,pid})
#   IM_MOTO_VENV           virtualenv for moto (default /opt/im-moto)
#   IM_MOTO_PIP_SPEC       what pip installs into it (default: pinned version below)
#   IM_MOTO_LOG            moto server log (default /tmp/moto_5055.log)
#   IM_PYTHON              python used to create the virtualenv (default python3)
#   IM_PG_PORT, IM_REDIS_PORT, IM_MONGO_PORT, IM_REDIS_LOG
#                          other ports / Redis log (for trying this script beside running services)

IM_PG_HOST=127.0.0.1
IM_PG_PORT="${IM_PG_PORT:-5432}"
IM_REDIS_HOST=127.0.0.1
IM_REDIS_PORT="${IM_REDIS_PORT:-6379}"
IM_REDIS_LOG="${IM_REDIS_LOG:-/var/log/redis/ci.log}"
IM_MONGO_HOST=127.0.0.1
IM_MONGO_PORT="${IM_MONGO_PORT:-27017}"
IM_NX_VENV="${IM_NX_VENV:-/opt/im-nx27017}"
IM_NX_PIP_SPEC="${IM_NX_PIP_SPEC:-nx-27017==0.8.1 neosqlite==1.17.2 pymongo==4.20.1}"
IM_NX_LOG="${IM_NX_LOG:-/tmp/nx_27017.log}"
IM_NX_PID="${IM_NX_PID:-/tmp/nx_27017.pid}"
IM_S3_HOST=127.0.0.1
IM_S3_PORT="${IM_S3_PORT:-5055}"
IM_MOTO_VENV="${IM_MOTO_VENV:-/opt/im-moto}"
IM_MOTO_PIP_SPEC="${IM_MOTO_PIP_SPEC:-moto[server]==5.1.18}"
IM_MOTO_LOG="${IM_MOTO_LOG:-/tmp/moto_5055.log}"
_IM_APT_UPDATED="${_IM_APT_UPDATED:-}"

im__log() { printf '[services] %s\n' "$*" >&2; }
im__die() { printf '[services] ERROR: %s\n' "$*" >&2; return 1; }

# Runs a command as root (directly, or through sudo when not root).
im__root() {
    if [[ ${EUID:-$(id -u)} -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo -n "$@"
    else
        im__die "need root to run: $*"
    fi
}

# `apt-get update`, once per shell.
im__apt_update() {
    if [[ -z $_IM_APT_UPDATED ]]; then
        im__log "apt-get update"
        im__root env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2 || return 1
        _IM_APT_UPDATED=1
    fi
}

# apt-get install, running `apt-get update` once first (only when something is installed).
im__apt_install() {
    im__apt_update || return 1
    im__log "apt-get install $*"
    im__root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >&2
}

# Runs a daemon-starting command (or function) detached from this shell: stdin from
# /dev/null, output appended to LOG, and no inherited descriptors above 2 (a daemon
# holding a caller's pipe open would keep a CI log or a `$(...)` waiting). On failure
# the end of LOG is shown.
im__detached() {
    local log=$1 rc=0
    shift
    (
        fd=
        for fd in /proc/"$BASHPID"/fd/*; do
            fd=${fd##*/}
            if [[ $fd =~ ^[0-9]+$ ]] && ((fd > 2)); then
                { exec {fd}>&-; } 2>/dev/null || true
            fi
        done
        "$@"
    ) </dev/null >>"$log" 2>&1 || rc=$?
    if ((rc != 0)); then
        tail -n 20 "$log" >&2 2>/dev/null || true
    fi
    return "$rc"
}

# im__wait NAME CHECK_FUNCTION: polls CHECK_FUNCTION until it succeeds or IM_SERVICE_WAIT runs out.
im__wait() {
    local name=$1 check=$2 limit=${IM_SERVICE_WAIT:-30}
    local deadline=$((SECONDS + limit))
    while ((SECONDS < deadline)); do
        if "$check"; then
            return 0
        fi
        sleep 0.5
    done
    "$check" || im__die "$name did not answer within ${limit}s"
}

# ---------------------------------------------------------------- PostgreSQL

im__pg_ready() { pg_isready -q -h "$IM_PG_HOST" -p "$IM_PG_PORT" -t 2 >/dev/null 2>&1; }

im__pg_query_ok() {
    [[ "$(PGCONNECT_TIMEOUT=5 psql -X -w -q -h "$IM_PG_HOST" -p "$IM_PG_PORT" -U postgres -d postgres \
        -tAc 'select 1' 2>/dev/null)" == 1 ]]
}

# The newest PostgreSQL version that has a cluster configured under /etc/postgresql.
im__pg_version() {
    local d
    [[ -d /etc/postgresql ]] || return 1
    d=$(find /etc/postgresql -mindepth 1 -maxdepth 1 -type d -printf '%f\n' 2>/dev/null | sort -V | tail -n 1)
    [[ -n $d ]] || return 1
    printf '%s\n' "$d"
}

# The method of the first `host all all ADDR` rule in pg_hba.conf (first match wins).
im__pg_hba_method() {
    awk -v addr="$2" '$1 == "host" && $2 == "all" && $3 == "all" && $4 == addr { print $5; exit }' "$1"
}

# Puts trust rules for TCP loopback connections first in pg_hba.conf.
im__pg_trust_loopback() {
    local hba=$1 tmp
    [[ -f $hba ]] || { im__die "no $hba"; return 1; }
    if [[ $(im__pg_hba_method "$hba" 127.0.0.1/32) == trust && $(im__pg_hba_method "$hba" ::1/128) == trust ]]; then
        return 0
    fi
    im__log "adding trust rules for 127.0.0.1/32 and ::1/128 to $hba"
    tmp=$(mktemp) || return 1
    {
        echo '# Added by scripts/services.sh: tests connect over TCP as postgres without a password.'
        echo 'host    all             all             127.0.0.1/32            trust'
        echo 'host    all             all             ::1/128                 trust'
        cat "$hba"
    } >"$tmp" && im__root cp "$tmp" "$hba"
    local rc=$?
    rm -f "$tmp"
    return "$rc"
}

im_services_postgres() {
    if im__pg_ready && im__pg_query_ok; then
        im__log "PostgreSQL answers on $IM_PG_HOST:$IM_PG_PORT"
        return 0
    fi
    if ! command -v pg_ctlcluster >/dev/null 2>&1 || ! command -v psql >/dev/null 2>&1 ||
        ! command -v pg_isready >/dev/null 2>&1 || ! im__pg_version >/dev/null; then
        im__apt_install postgresql || { im__die "could not install postgresql"; return 1; }
    fi
    local ver cluster_dir
    ver=$(im__pg_version)
    if [[ -z $ver ]]; then
        # Server installed but no cluster: make the default one.
        ver=$(find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -type d -printf '%f\n' 2>/dev/null | sort -V | tail -n 1)
        [[ -n $ver ]] || { im__die "postgresql is installed but no server version found under /usr/lib/postgresql"; return 1; }
        im__log "creating PostgreSQL cluster $ver/main"
        im__root pg_createcluster --port "$IM_PG_PORT" "$ver" main >&2 || { im__die "pg_createcluster $ver main failed"; return 1; }
    fi
    cluster_dir=/etc/postgresql/$ver/main
    im__pg_trust_loopback "$cluster_dir/pg_hba.conf" || return 1
    if im__pg_ready; then
        # Running (e.g. started by the package's postinst) but not accepting us: reload the rules.
        im__log "reloading PostgreSQL $ver/main"
        im__root pg_ctlcluster --skip-systemctl-redirect "$ver" main reload >&2 || true
    else
        im__log "starting PostgreSQL $ver/main"
        # A non-zero exit can also mean "already running" (e.g. still starting up):
        # the wait below decides.
        im__detached /tmp/im_pg_start.log im__root pg_ctlcluster --skip-systemctl-redirect "$ver" main start ||
            im__log "pg_ctlcluster $ver main start exited non-zero; waiting for the server anyway"
    fi
    im__wait "PostgreSQL on $IM_PG_HOST:$IM_PG_PORT" im__pg_ready ||
        { im__die "see /var/log/postgresql/postgresql-$ver-main.log"; return 1; }
    im__wait "PostgreSQL query as postgres over TCP" im__pg_query_ok ||
        { im__die "psql -h $IM_PG_HOST -U postgres -c 'select 1' fails: check $cluster_dir/pg_hba.conf"; return 1; }
    im__log "PostgreSQL answers on $IM_PG_HOST:$IM_PG_PORT"
}

# --------------------------------------------------------------------- Redis

im__redis_ready() {
    [[ "$(timeout 5 redis-cli -h "$IM_REDIS_HOST" -p "$IM_REDIS_PORT" ping 2>/dev/null)" == PONG ]]
}

im_services_redis() {
    if command -v redis-cli >/dev/null 2>&1 && im__redis_ready; then
        im__log "Redis answers on $IM_REDIS_HOST:$IM_REDIS_PORT"
        return 0
    fi
    if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
        im__apt_install redis-server || { im__die "could not install redis-server"; return 1; }
        # The package may have started its own instance on the same port.
        if im__redis_ready; then
            im__log "Redis answers on $IM_REDIS_HOST:$IM_REDIS_PORT"
            return 0
        fi
    fi
    im__root mkdir -p /var/lib/redis /var/log/redis || return 1
    im__log "starting Redis"
    im__detached /var/log/redis/ci-start.log im__root redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$IM_REDIS_PORT" \
        --save "" --appendonly no --dir /var/lib/redis --logfile "$IM_REDIS_LOG" ||
        { im__die "redis-server failed to start (see $IM_REDIS_LOG)"; return 1; }
    im__wait "Redis on $IM_REDIS_HOST:$IM_REDIS_PORT" im__redis_ready ||
        { im__die "see $IM_REDIS_LOG"; return 1; }
    im__log "Redis answers on $IM_REDIS_HOST:$IM_REDIS_PORT"
}

# ------------------------------------------------------- MongoDB (nx-27017)

im__mongo_tcp() { timeout 2 bash -c "exec 3<>/dev/tcp/$IM_MONGO_HOST/$IM_MONGO_PORT" 2>/dev/null; }

# A MongoDB `ping` through pymongo from the nx-27017 virtualenv; falls back to the TCP
# probe when that python or pymongo is not there (e.g. another server owns the port).
im__mongo_ready() {
    im__mongo_tcp || return 1
    local py=$IM_NX_VENV/bin/python
    if [[ -x $py ]] && "$py" -c 'import pymongo' >/dev/null 2>&1; then
        timeout 10 "$py" - "mongodb://$IM_MONGO_HOST:$IM_MONGO_PORT" >/dev/null 2>&1 <<'PY'
import sys
from pymongo import MongoClient
c = MongoClient(sys.argv[1], serverSelectionTimeoutMS=2000, connectTimeoutMS=2000)
assert c.admin.command("ping").get("ok") == 1
PY
    fi
}

im__nx_venv() {
    local py=${IM_PYTHON:-python3}
    if [[ -x $IM_NX_VENV/bin/nx-27017 ]] && "$IM_NX_VENV/bin/python" -c 'import pymongo, nx_27017' >/dev/null 2>&1; then
        return 0
    fi
    if [[ ! -x $IM_NX_VENV/bin/python ]]; then
        im__log "creating virtualenv $IM_NX_VENV"
        if ! command -v "$py" >/dev/null 2>&1; then
            im__apt_install python3 python3-venv || return 1
        fi
        if ! im__root "$py" -m venv "$IM_NX_VENV" >&2; then
            im__root rm -rf "$IM_NX_VENV"
            im__apt_install python3-venv || return 1
            im__root "$py" -m venv "$IM_NX_VENV" >&2 || { im__die "python3 -m venv $IM_NX_VENV failed"; return 1; }
        fi
    fi
    im__log "pip install $IM_NX_PIP_SPEC into $IM_NX_VENV"
    # shellcheck disable=SC2086 # IM_NX_PIP_SPEC is a list of requirement specifiers
    im__root "$IM_NX_VENV/bin/python" -m pip install -q --disable-pip-version-check $IM_NX_PIP_SPEC >&2 ||
        { im__die "pip install $IM_NX_PIP_SPEC failed"; return 1; }
}

im_services_mongo() {
    if im__mongo_tcp; then
        if im__mongo_ready; then
            im__log "MongoDB wire protocol answers on $IM_MONGO_HOST:$IM_MONGO_PORT"
            return 0
        fi
        # Something listens but does not answer a ping yet: give it the usual time.
        im__wait "MongoDB ping on $IM_MONGO_HOST:$IM_MONGO_PORT" im__mongo_ready ||
            { im__die "port $IM_MONGO_PORT is open but does not answer a MongoDB ping"; return 1; }
        return 0
    fi
    im__nx_venv || return 1
    # nx-27017 refuses to start while its pid file exists, even when that process is gone.
    if [[ -f $IM_NX_PID ]]; then
        local pid
        pid=$(cat "$IM_NX_PID" 2>/dev/null || true)
        if [[ $pid =~ ^[0-9]+$ ]] && tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -q 'nx[-_]27017'; then
            # Alive but not listening: probably still starting.
            if im__wait "nx-27017 (pid $pid) on $IM_MONGO_HOST:$IM_MONGO_PORT" im__mongo_ready; then
                im__log "MongoDB wire protocol answers on $IM_MONGO_HOST:$IM_MONGO_PORT"
                return 0
            fi
            im__die "nx-27017 (pid $pid) runs but does not answer; see $IM_NX_LOG"
            return 1
        fi
        im__log "removing stale pid file $IM_NX_PID"
        im__root rm -f "$IM_NX_PID"
    fi
    im__log "starting nx-27017 (in-memory, one isolated store per logical database)"
    im__detached "$IM_NX_LOG" im__root "$IM_NX_VENV/bin/nx-27017" -d --data-dir memory \
        --host "$IM_MONGO_HOST" -p "$IM_MONGO_PORT" --log-file "$IM_NX_LOG" --pid-file "$IM_NX_PID" ||
        { im__die "nx-27017 failed to start; see $IM_NX_LOG"; return 1; }
    im__wait "nx-27017 on $IM_MONGO_HOST:$IM_MONGO_PORT" im__mongo_ready ||
        { im__die "see $IM_NX_LOG"; return 1; }
    im__log "MongoDB wire protocol answers on $IM_MONGO_HOST:$IM_MONGO_PORT"
}

# ------------------------------------------------------------- S3 (moto server)

# An S3 ListBuckets answered over HTTP (moto needs no credentials for it).
im__s3_ready() {
    timeout 5 "${IM_PYTHON:-python3}" - "http://$IM_S3_HOST:$IM_S3_PORT/" >/dev/null 2>&1 <<'PY'
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=3) as r:
    assert r.status == 200 and b"ListAllMyBucketsResult" in r.read()
PY
}

im__moto_venv() {
    local py=${IM_PYTHON:-python3}
    if [[ -x $IM_MOTO_VENV/bin/moto_server ]] && "$IM_MOTO_VENV/bin/python" -c 'import moto.server' >/dev/null 2>&1; then
        return 0
    fi
    if [[ ! -x $IM_MOTO_VENV/bin/python ]]; then
        im__log "creating virtualenv $IM_MOTO_VENV"
        if ! command -v "$py" >/dev/null 2>&1; then
            im__apt_install python3 python3-venv || return 1
        fi
        if ! im__root "$py" -m venv "$IM_MOTO_VENV" >&2; then
            im__root rm -rf "$IM_MOTO_VENV"
            im__apt_install python3-venv || return 1
            im__root "$py" -m venv "$IM_MOTO_VENV" >&2 || { im__die "python3 -m venv $IM_MOTO_VENV failed"; return 1; }
        fi
    fi
    im__log "pip install $IM_MOTO_PIP_SPEC into $IM_MOTO_VENV"
    # shellcheck disable=SC2086 # IM_MOTO_PIP_SPEC is a list of requirement specifiers
    im__root "$IM_MOTO_VENV/bin/python" -m pip install -q --disable-pip-version-check $IM_MOTO_PIP_SPEC >&2 ||
        { im__die "pip install $IM_MOTO_PIP_SPEC failed"; return 1; }
}

# moto_server stays in the foreground: start it in a session of its own, in the background (the
# caller, im__detached, has pointed its standard streams at the log).
im__moto_spawn() {
    im__root setsid "$IM_MOTO_VENV/bin/moto_server" -H "$IM_S3_HOST" -p "$IM_S3_PORT" &
}

im_services_s3() {
    if im__s3_ready; then
        im__log "S3 protocol answers on $IM_S3_HOST:$IM_S3_PORT"
        return 0
    fi
    im__moto_venv || return 1
    im__log "starting moto's S3 server (in memory)"
    im__detached "$IM_MOTO_LOG" im__moto_spawn ||
        { im__die "moto_server failed to start; see $IM_MOTO_LOG"; return 1; }
    im__wait "moto on $IM_S3_HOST:$IM_S3_PORT" im__s3_ready || { im__die "see $IM_MOTO_LOG"; return 1; }
    im__log "S3 protocol answers on $IM_S3_HOST:$IM_S3_PORT"
}

# --------------------------------------------------------------------- nginx

# The nginx binary (it lives in /usr/sbin, which a non-root PATH may lack).
im__nginx_bin() {
    if command -v nginx >/dev/null 2>&1; then
        command -v nginx
    elif [[ -x /usr/sbin/nginx ]]; then
        printf '%s\n' /usr/sbin/nginx
    else
        return 1
    fi
}

# The first of the given packages that apt can install (a Candidate other than "(none)").
im__apt_candidate() {
    local p cand
    for p in "$@"; do
        cand=$(apt-cache policy "$p" 2>/dev/null | awk '$1 == "Candidate:" { print $2; exit }')
        if [[ -n $cand && $cand != "(none)" ]]; then
            printf '%s\n' "$p"
            return 0
        fi
    done
    return 1
}

# Installs nginx when it is missing, without starting (or enabling) the system service: a
# temporary /usr/sbin/policy-rc.d that answers 101 keeps the package's maintainer scripts from
# starting it. Debian 12's `nginx` is the real package (`nginx-light` is a transitional package
# that pulls it in plus a module); whichever apt offers is used.
im_services_nginx() {
    local bin
    if bin=$(im__nginx_bin); then
        im__log "nginx is installed: $("$bin" -v 2>&1)"
        return 0
    fi
    local pkg
    pkg=$(im__apt_candidate nginx nginx-light) || {
        im__apt_update || return 1
        pkg=$(im__apt_candidate nginx nginx-light)
    } || { im__die "apt offers neither nginx nor nginx-light"; return 1; }
    local policy=/usr/sbin/policy-rc.d made_policy=
    if [[ ! -e $policy ]]; then
        im__root sh -c "printf '#!/bin/sh\n# scripts/services.sh: installing nginx without starting it\nexit 101\n' >$policy && chmod 755 $policy" ||
            { im__die "could not write $policy"; return 1; }
        made_policy=1
    fi
    local rc=0
    im__apt_install "$pkg" || rc=$?
    if [[ -n $made_policy ]]; then
        im__root rm -f "$policy"
    fi
    ((rc == 0)) || { im__die "could not install $pkg"; return 1; }
    # On a systemd host, do not start it at the next boot either.
    if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null 2>&1; then
        im__root systemctl disable --quiet nginx >/dev/null 2>&1 || true
    fi
    bin=$(im__nginx_bin) || { im__die "$pkg installed but no nginx binary found"; return 1; }
    im__log "installed $pkg: $("$bin" -v 2>&1) (service not started)"
}

# --------------------------------------------------------------------- all

im_services_up() {
    if [[ ${IM_SKIP_SERVICES:-} == 1 ]]; then
        im__log "IM_SKIP_SERVICES=1: not checking services"
        return 0
    fi
    im_services_postgres || return 1
    im_services_redis || return 1
    im_services_mongo || return 1
    im_services_s3 || return 1
    im_services_nginx || return 1
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    set -euo pipefail
    im_services_up
else
    im_services_up || return 1
fi
