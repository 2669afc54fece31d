#!/usr/bin/env bash
# The web client's tests (web/): installs what they need on a fresh Debian machine (Chromium from
# apt; the Node packages of web/package-lock.json with npm ci), then
#   1. type-checks the sources (tsc) and runs the unit tests (Vitest);
#   2. rebuilds web/dist and fails if it differs from the committed build (which im-server
#      embeds, so that building the server needs no Node);
#   3. runs the end-to-end suite (web/e2e, node's test runner) in headless Chromium against the
#      debug im-server that `cargo test` built, each test file with its own server on a fresh
#      SQLite file.
#
# Environment respected (defaults in brackets):
#   CARGO_TARGET_DIR   [target/]   where to find debug/im-server (built if missing)
#   IM_SERVER_BIN      [<target>/debug/im-server]
#   CHROMIUM           [/usr/bin/chromium]
#   IM_E2E_UPDATE_SCREENSHOTS=1    write the screenshots to docs/img/ (README) instead of web/e2e/out/
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here/.."
started=$SECONDS
step() { printf '[web-test] %s (+%ds)\n' "$*" "$((SECONDS - started))"; }

apt_install() {
    if [[ $(id -u) -ne 0 ]]; then
        echo "[web-test] missing $*; install it (apt-get install -y $*) or run as root" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "$@"
}

# fonts-noto-cjk: the Chinese UI renders (and its screenshot shows) real glyphs;
# fonts-noto-color-emoji: so do the reactions.
missing=()
[[ -x "${CHROMIUM:-/usr/bin/chromium}" ]] || missing+=(chromium)
for pkg in fonts-noto-cjk fonts-noto-color-emoji; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' || missing+=("$pkg")
done
if ((${#missing[@]})); then
    if [[ " ${missing[*]} " == *" chromium "* || $(id -u) -eq 0 ]]; then
        step "installing ${missing[*]} (apt)"
        apt_install "${missing[@]}"
    else
        echo "[web-test] fonts missing (${missing[*]}): screenshots show boxes for their glyphs" >&2
    fi
fi
if ! command -v npm >/dev/null 2>&1; then
    step "installing Node.js and npm (apt)"
    apt_install nodejs npm
fi
node_major=$(node -p 'process.versions.node.split(".")[0]')
if ((node_major < 20)); then
    echo "[web-test] Node.js $(node --version) is too old: Vite needs 20.19 or later" >&2
    exit 1
fi

cd web
step "npm ci ($(node --version), npm $(npm --version))"
npm ci --no-audit --no-fund --loglevel=error

step "tsc --noEmit"
npm run --silent check

step "unit tests (vitest)"
npx vitest run --reporter=dot

step "vite build, compared with the committed web/dist"
npm run --silent build >/dev/null
if [[ -n "$(git status --porcelain -- dist)" ]]; then
    git status --short -- dist >&2
    git --no-pager diff --stat -- dist >&2
    echo "[web-test] web/dist differs from a build of web/src: run 'npm run build' in web/ and commit web/dist" >&2
    exit 1
fi
gzip_size() { gzip -9 -c "$1" | wc -c; }
total=0
for f in dist/assets/*.js dist/assets/*.css; do total=$((total + $(gzip_size "$f"))); done
step "first load: $(du -cb dist/assets/*.js dist/assets/*.css | tail -1 | cut -f1) bytes of JS + CSS, $total gzipped"

target="${CARGO_TARGET_DIR:-target}"
[[ "$target" = /* ]] || target="$PWD/../$target"
export IM_SERVER_BIN="${IM_SERVER_BIN:-$target/debug/im-server}"
if [[ ! -x "$IM_SERVER_BIN" ]]; then
    step "building im-server (cargo build -p server)"
    (cd .. && cargo build -p server --bin im-server)
fi

step "end-to-end tests (headless Chromium, $IM_SERVER_BIN)"
node --test --test-concurrency=1 --test-reporter=spec e2e/
step "done"
