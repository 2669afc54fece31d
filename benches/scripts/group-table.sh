#!/usr/bin/env bash
# A markdown table from the JSON summaries that group-bench.sh leaves in OUT_DIR.
#   benches/scripts/group-table.sh [OUT_DIR]        (default /tmp/im-group-bench)
set -euo pipefail
OUT=${1:-/tmp/im-group-bench}

echo "| members | target msg/s | target deliveries/s | sent/s | acked/s | deliveries/s | ack p50 | ack p99 | last member p50 | last member p99 | last member max | acked | lost msgs | missing deliveries | dup | out of order | unacked | errors | disconnects | server CPU | server RSS | gen CPU | exit |"
echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---:|---:|---:|---:|"
for f in $(ls "$OUT" | grep '^group-.*\.json$' | sort -t- -k3,3n -k4,4n); do
    f=$OUT/$f
    rc=$(cat "${f%.json}.rc" 2>/dev/null || echo "?")
    if ! jq -e . "$f" >/dev/null 2>&1; then
        echo "| $(basename "$f" .json) | (no summary: $(tail -1 "${f%.json}.stderr")) |"
        continue
    fi
    jq -r --arg rc "$rc" '
      def ms: if . == null then "-" elif . >= 1000 then "\((. / 1000 * 10 | round) / 10) s" else "\((. * 10 | round) / 10) ms" end;
      def counts: if (. | length) == 0 then "none" else (to_entries | map("\(.key)=\(.value)") | join(" ")) end;
      "| \(.config.members) | \(.throughput.target_per_sec) | \(.throughput.target_deliveries_per_sec) | \(.throughput.sent_per_sec) | \(.throughput.acked_per_sec) | \(.throughput.deliveries_per_sec) | \(.latency_ms.ack.p50 | ms) | \(.latency_ms.ack.p99 | ms) | \(.latency_ms.delivered_last.p50 | ms) | \(.latency_ms.delivered_last.p99 | ms) | \(.latency_ms.delivered_last.max | ms) | \(.counts.acked) | \(.counts.lost) | \(.counts.missing_deliveries) | \(.counts.duplicated) | \(.counts.out_of_order) | \(.counts.unacked) | \(.errors | counts) | \(.disconnects | counts) | \(.server.cpu_pct)% | \((.server.peak_rss_kib / 1024 | round)) MiB | \(.generator.cpu_pct)% | \($rc) |"
    ' "$f"
done
