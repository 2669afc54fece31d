#!/usr/bin/env python3
"""Throughput against latency from `im-loadgen --step ... --json` summaries.

    /opt/im-bench-venv/bin/python benches/scripts/chart.py [RESULTS_DIR] [OUT_PNG]

Defaults: benches/results/ and docs/img/throughput-latency.png.

Reads every `*.json` in RESULTS_DIR whose `mode` is `step`:
  - `direct` runs: achieved acked msg/s (x) against send->ack p50 and p99 (y, log), one colour
    per backend (the `label`, or the backend it names: sqlite, postgres, mongodb); each step series (file) is its own
    line, so a backend measured with a 10 ms and a 100 ms bound has two lines of its colour;
  - `group` runs: achieved deliveries/s (x) against send->last-member p99 (and p50), in a
    second panel.
Points are joined in step order (offered rate), so a last step whose achieved rate fell under
overload bends its line back to the left. Steps that did not hold are drawn with hollow markers (their latency covers only the messages
that were answered, so it understates the tail).
"""
import glob
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
RESULTS = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "benches", "results")
OUT = sys.argv[2] if len(sys.argv) > 2 else os.path.join(ROOT, "docs", "img", "throughput-latency.png")

COLOURS = {"sqlite": "tab:blue", "postgres": "tab:orange", "mongodb": "tab:green"}
NAMES = {"sqlite": "SQLite", "postgres": "PostgreSQL", "mongodb": "MongoDB (nx-27017)"}


def backend(label):
    """The backend a run's label names (`sqlite`, `direct-postgres-p99-10ms`, ...)."""
    for name in COLOURS:
        if name in label:
            return name
    return label


def load():
    direct, group = {}, {}
    for path in sorted(glob.glob(os.path.join(RESULTS, "*.json"))):
        try:
            j = json.load(open(path))
        except (OSError, ValueError):
            continue
        if j.get("mode") != "step" or not j.get("steps"):
            continue
        label = backend(j.get("label") or os.path.basename(path))
        target = direct if j.get("scenario") == "direct" else group if j.get("scenario") == "group" else None
        if target is None:
            continue
        target.setdefault(label, []).append(j["steps"])
    return direct, group


def points(steps, x_key, lat_key):
    out = []
    for s in steps:
        lat = (s.get("latency_ms") or {}).get(lat_key) or {}
        if not lat.get("count"):
            continue
        out.append((s.get("target_per_sec", 0), s[x_key], lat["p50"], lat["p99"], bool(s.get("held"))))
    # In step order (offered rate), so an overloaded last step whose achieved rate fell bends
    # the line back instead of zig-zagging.
    return [p[1:] for p in sorted(out)]


def draw(ax, series, x_key, lat_key, title, xlabel, bounds):
    for label, runs in sorted(series.items()):
        c = COLOURS.get(label, None)
        name = NAMES.get(label, label)
        for n, steps in enumerate(runs):
            pts = points(steps, x_key, lat_key)
            if not pts:
                continue
            xs = [p[0] for p in pts]
            ax.plot(xs, [p[2] for p in pts], "-", color=c, label=f"{name} p99" if n == 0 else None)
            ax.plot(xs, [p[1] for p in pts], "--", color=c, alpha=0.7, label=f"{name} p50" if n == 0 else None)
            for x, p50, p99, held in pts:
                face = c if held else "white"
                ax.plot([x], [p99], "o", color=c, markerfacecolor=face, markersize=6)
                ax.plot([x], [p50], "s", color=c, markerfacecolor=face, markersize=4, alpha=0.7)
    for y, text in bounds:
        ax.axhline(y, color="grey", linestyle=":", linewidth=1)
        ax.text(ax.get_xlim()[1], y, f" {text}", va="bottom", ha="right", fontsize=8, color="grey")
    ax.set_yscale("log")
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:,.0f}" if str(int(v))[0] in "25" else ""))
    ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_xlabel(xlabel)
    ax.set_ylabel("latency, ms (log)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")


def main():
    direct, group = load()
    if not direct and not group:
        sys.exit(f"no step summaries in {RESULTS}")
    panels = [p for p in (direct, group) if p]
    fig, axes = plt.subplots(1, len(panels), figsize=(7 * len(panels), 5.5), squeeze=False)
    i = 0
    if direct:
        draw(
            axes[0][i], direct, "acked_per_sec", "ack",
            "1:1 chat, 200 pairs: send->ack latency", "achieved msg/s (acked, log scale)",
            [(10, "10 ms target"), (100, "100 ms bound")],
        )
        i += 1
    if group:
        draw(
            axes[0][i], group, "delivered_per_sec", "delivered_last",
            "1 group x 1,000 members: send->last member", "achieved deliveries/s (log scale)",
            [(50, "50 ms target")],
        )
    fig.suptitle("im-server, 2 vCPUs, server + generator on one host (loopback); hollow = step did not hold",
                 fontsize=10)
    fig.tight_layout()
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    fig.savefig(OUT, dpi=110)
    print(OUT)


if __name__ == "__main__":
    main()
