#!/usr/bin/env bash
# Builds the cargo-fuzz targets of fuzz/ and runs each for a while (libFuzzer, coverage-guided).
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     (default 20 s; every target)
#
# Works on stable Rust: `--sanitizer none` needs no nightly flag (the targets are safe Rust, so
# AddressSanitizer would add little; with a nightly toolchain, `cargo +nightly fuzz run TARGET`
# runs with it). Installs cargo-fuzz with `cargo install --locked` when it is missing. Corpora
# persist in fuzz/corpus/<target>/ (not committed) so later runs start where earlier ones
# stopped; a finding is written to fuzz/artifacts/<target>/ and fails the script. Prints the
# executions per target (libFuzzer's "Done N runs in S second(s)").
#
# Environment: IM_FUZZ_TARGET_DIR [target/fuzz] where the instrumented build goes (it shares
# nothing with the normal build); IM_FUZZ_MAX_LEN [4096] largest input in bytes.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
if ! command -v cargo >/dev/null 2>&1 && [[ -x "${CARGO_HOME:-$HOME/.cargo}/bin/cargo" ]]; then
    export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
fi
secs=${1:-20}
shift || true
targets=("$@")
((${#targets[@]})) || targets=(client_frame config_toml tokens)
target_dir=${IM_FUZZ_TARGET_DIR:-$PWD/target/fuzz}
say() { printf '[fuzz] %s\n' "$*"; }

if ! cargo fuzz --version >/dev/null 2>&1; then
    say "installing cargo-fuzz (cargo install --locked cargo-fuzz)"
    cargo install --locked cargo-fuzz
fi
# A lean build: unoptimised, no debug info (findings are reproduced from their artifact).
export CARGO_PROFILE_DEV_DEBUG=0 CARGO_INCREMENTAL=0
say "cargo fuzz build --dev --sanitizer none (into $target_dir)"
(cd fuzz && cargo fuzz build --dev --sanitizer none --target-dir "$target_dir")
bin_dir="$target_dir/x86_64-unknown-linux-gnu/debug"
total=0
for t in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
    log=$(mktemp)
    rc=0
    # Seeds (read, never written): fuzz/seeds/<target>/, and the shipped configs for config_toml.
    seeds=()
    [[ -d fuzz/seeds/$t ]] && seeds+=("fuzz/seeds/$t")
    [[ $t == config_toml ]] && seeds+=(deploy/config)
    # -len_control=0: inputs may be long from the start (a slow target would otherwise stay
    # at a few bytes for its whole short run).
    "$bin_dir/$t" -max_total_time="$secs" -max_len="${IM_FUZZ_MAX_LEN:-4096}" -len_control=0 \
        -print_final_stats=1 -artifact_prefix="fuzz/artifacts/$t/" "fuzz/corpus/$t" "${seeds[@]}" \
        >"$log" 2>&1 || rc=$?
    runs=$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$log" | tail -1)
    corpus=$(find "fuzz/corpus/$t" -type f | wc -l)
    if ((rc != 0)); then
        tail -40 "$log" >&2
        say "$t: FINDING (exit $rc); input saved in fuzz/artifacts/$t/"
        rm -f "$log"
        exit 1
    fi
    say "$t: ${runs:-0} executions in ${secs} s, corpus $corpus inputs"
    total=$((total + ${runs:-0}))
    rm -f "$log"
done
say "total: $total executions over ${#targets[@]} targets"
