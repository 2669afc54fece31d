#!/usr/bin/env bash
# Supply-chain checks, run by .ci/run (and by hand: scripts/supply-chain.sh):
#   1. cargo deny (deny.toml): bans (duplicate versions, wildcards), licences and sources always;
#      advisories (RustSec) when the advisory database can be fetched from GitHub, or when a
#      copy is already in $CARGO_HOME/advisory-dbs (it is then used as it is, with its age
#      printed). Where neither holds (a machine that reaches crates.io only) the advisories
#      check is reported as SKIPPED, never as passed.
#   2. The patched actix-http (vendor/actix-http, vendor/README.md) is the one resolved, in the
#      workspace and in fuzz/: after an upgrade cargo would only warn "patch ... was not used"
#      and silently build the crates.io one, losing the idle-memory saving.
#   3. The workspace's rust-version is the newest rust-version of any crate in the resolved
#      graph (the vendored actix-http included): the toolchain it names really builds it.
# Installs cargo-deny with `cargo install --locked` when it is missing.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
if ! command -v cargo >/dev/null 2>&1 && [[ -x "${CARGO_HOME:-$HOME/.cargo}/bin/cargo" ]]; then
    export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
fi
say() { printf '[supply-chain] %s\n' "$*"; }
if ! command -v python3 >/dev/null 2>&1; then
    say "apt-get install python3 (reads cargo metadata)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q && apt-get install -y -q python3
fi

if ! cargo deny --version >/dev/null 2>&1; then
    say "installing cargo-deny (cargo install --locked cargo-deny)"
    cargo install --locked cargo-deny
fi
say "$(cargo deny --version)"

say "cargo deny check bans licenses sources"
cargo deny --log-level warn check bans licenses sources

db_dir="${CARGO_HOME:-$HOME/.cargo}/advisory-dbs"
if timeout 120 cargo deny --log-level error fetch db >/dev/null 2>&1; then
    say "cargo deny check advisories (database fetched now)"
    cargo deny --log-level warn check advisories
elif compgen -G "$db_dir/*/.git" >/dev/null 2>&1 || compgen -G "$db_dir/*/crates" >/dev/null 2>&1; then
    newest=$(find "$db_dir" -maxdepth 2 -mindepth 1 -printf '%TY-%Tm-%Td\n' 2>/dev/null | sort | tail -1)
    say "advisory database unreachable; checking against the copy in $db_dir (from $newest)"
    cargo deny --log-level warn check --disable-fetch advisories
else
    say "advisories: SKIPPED: the RustSec database (github.com/RustSec/advisory-db) cannot be fetched from this machine and no copy is in $db_dir"
fi

say "the patched actix-http is the one resolved"
check_patch() {
    local manifest=$1
    cargo metadata --format-version 1 --locked --manifest-path "$manifest" | python3 -c '
import json, sys, os
m = json.load(sys.stdin)
ids = {n["id"] for n in m["resolve"]["nodes"]}
found = [p for p in m["packages"] if p["name"] == "actix-http" and p["id"] in ids]
want = os.path.realpath("vendor/actix-http/Cargo.toml")
bad = [p for p in found if p["source"] is not None or os.path.realpath(p["manifest_path"]) != want]
if not found or bad:
    for p in found:
        print("  actix-http", p["version"], "from", p["source"] or p["manifest_path"])
    sys.exit(f"{sys.argv[1]}: actix-http must come from vendor/actix-http only (is the [patch.crates-io] entry still used?)")
' "$manifest"
    # cargo records a patch it could not apply in Cargo.lock.
    local lock
    lock="$(dirname "$manifest")/Cargo.lock"
    if grep -q '^\[\[patch.unused\]\]' "$lock"; then
        echo "$lock: cargo did not use a [patch] entry:" >&2
        sed -n '/^\[\[patch.unused\]\]/,/^$/p' "$lock" >&2
        exit 1
    fi
}
check_patch Cargo.toml
check_patch fuzz/Cargo.toml

say "the workspace rust-version matches the resolved graph"
cargo metadata --format-version 1 --locked --filter-platform x86_64-unknown-linux-gnu | python3 -c '
import json, sys, re
m = json.load(sys.stdin)
ids = {n["id"] for n in m["resolve"]["nodes"]}
members = set(m["workspace_members"])
def v(s): return tuple(int(x) for x in s.split("."))[:2]
ws = {v(p["rust_version"]) for p in m["packages"] if p["id"] in members and p.get("rust_version")}
deps = sorted(((v(p["rust_version"]), p["name"], p["version"]) for p in m["packages"]
               if p["id"] in ids and p["id"] not in members and p.get("rust_version")), reverse=True)
need, name, ver = deps[0]
vendored = next(((v(p["rust_version"]), p["version"]) for p in m["packages"]
                 if p["name"] == "actix-http" and p["source"] is None and p.get("rust_version")), None)
print(f"  workspace rust-version: {sorted(ws)}; newest needed: {need[0]}.{need[1]} ({name} {ver}); vendored actix-http needs {vendored}")
if len(ws) != 1 or ws.pop() != need:
    sys.exit(f"set [workspace.package] rust-version = \"{need[0]}.{need[1]}\" in Cargo.toml (every member inherits it)")
'
say "ok"
