#!/usr/bin/env bash
# Markdown tables from the JSON summaries that chat-bench.sh leaves in OUT_DIR.
#   benches/scripts/chat-table.sh [OUT_DIR]        (default /tmp/im-chat-bench)
set -euo pipefail
OUT=${1:-/tmp/im-chat-bench}

echo "| store | target msg/s | sent/s | acked/s | delivered/s | ack p50 | ack p99 | delivered p50 | delivered p99 | max | sent | unacked | lost | dup | errors | server CPU | server RSS | gen CPU | exit |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|"
for f in $(for b in sqlite postgres mongodb; do ls "$OUT" | grep "^direct-$b-[0-9]*\.json$" | sort -t- -k3,3n; done); do
    f=$OUT/$f
    rc=$(cat "${f%.json}.rc" 2>/dev/null || echo "?")
    if ! jq -e . "$f" >/dev/null 2>&1; then
        echo "| $(basename "$f" .json) | (no summary: $(tail -1 "${f%.json}.stderr")) |"
        continue
    fi
    jq -r --arg rc "$rc" '
      def ms: if . == null then "-" elif . >= 1000 then "\((. / 1000 * 10 | round) / 10) s" else "\((. * 10 | round) / 10) ms" end;
      "| \(.label) | \(.throughput.target_per_sec) | \(.throughput.sent_per_sec) | \(.throughput.acked_per_sec) | \(.throughput.delivered_per_sec) | \(.latency_ms.ack.p50 | ms) | \(.latency_ms.ack.p99 | ms) | \(.latency_ms.delivered.p50 | ms) | \(.latency_ms.delivered.p99 | ms) | \(.latency_ms.delivered.max | ms) | \(.counts.sent) | \(.counts.unacked) | \(.counts.lost) | \(.counts.duplicated) | \(if (.errors | length) == 0 then "none" else (.errors | to_entries | map("\(.key)=\(.value)") | join(" ")) end) | \(.server.cpu_pct)% | \((.server.peak_rss_kib / 1024 | round)) MiB | \(.generator.cpu_pct)% | \($rc) |"
    ' "$f"
done
echo
echo "| run | logins/s | p50 | p90 | p99 | max | ok | failed | server CPU |"
echo "|---|---:|---:|---:|---:|---:|---:|---|---:|"
for f in "$OUT"/login-*.json; do
    [[ -e $f ]] || continue
    jq -r '
      "| \(.label) | \(.throughput.logins_per_sec) | \(.latency_ms.login.p50) ms | \(.latency_ms.login.p90) ms | \(.latency_ms.login.p99) ms | \(.latency_ms.login.max) ms | \(.counts.ok) | \(if (.counts.failed | length) == 0 then "none" else (.counts.failed | tostring) end) | \(.server.cpu_pct)% |"
    ' "$f"
done
