"""The benchmark report: bench/results/report.md with plots, from latest.json (and peers.json).

    python -m bench.markdown [--results bench/results]

`make bench` and `make bench-peers` call it after writing their JSON; run it by hand to
redraw. Plots: throughput bars (ours, the bare consumers, the peers) and the freshness CDF.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def _load(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _fmt(value: Any, digits: int = 0) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        return f"{value:,.{digits}f}"
    return str(value)


def throughput_bars(
    latest: dict[str, Any], peers: dict[str, Any] | None
) -> list[tuple[str, float | None, float | None]]:
    """(label, end-to-end rate, steady rate) for every measured pipeline."""
    bars = [
        ("bare consumer, group", latest.get("raw_consume_msgs_per_s"), latest.get("raw_consume_steady_msgs_per_s")),
        ("stream-etl, group", latest.get("e2e_rows_per_s"), latest.get("e2e_steady_rows_per_s")),
        (
            "bare consumer, direct",
            latest.get("raw_consume_assign_msgs_per_s"),
            latest.get("raw_consume_assign_steady_msgs_per_s"),
        ),
        ("stream-etl, direct", latest.get("e2e_assign_rows_per_s"), latest.get("e2e_assign_steady_rows_per_s")),
        ("stream-etl, rich topology", latest.get("e2e_rich_rows_per_s"), latest.get("e2e_rich_steady_rows_per_s")),
        (
            "stream-etl, two workers",
            latest.get("e2e_two_workers_rows_per_s"),
            latest.get("e2e_two_workers_steady_rows_per_s"),
        ),
    ]
    found = (peers or {}).get("peers", {})
    entries = found.items() if isinstance(found, dict) else ((e.get("name"), e) for e in found)
    for name, entry in entries:
        bars.append((f"{name} (peer)", entry.get("rows_per_s"), entry.get("steady_rows_per_s")))
    return [b for b in bars if b[1] is not None]


def _plot_throughput(bars: list[tuple[str, float | None, float | None]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [b[0] for b in bars]
    e2e = [(b[1] or 0) / 1000 for b in bars]
    steady = [(b[2] or 0) / 1000 for b in bars]
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(bars) + 1.5))
    y = range(len(bars))
    ax.barh([i + 0.2 for i in y], e2e, height=0.4, label="from process start")
    ax.barh([i - 0.2 for i in y], steady, height=0.4, label="steady (after first commit)")
    ax.set_yticks(list(y), labels)
    ax.invert_yaxis()
    ax.set_xlabel("thousand records / s (1M ~120-byte JSON records, Kafka -> Delta on S3)")
    ax.legend(loc="lower right")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_freshness(cdf: list[list[float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot([p[0] for p in cdf], [p[1] for p in cdf])
    ax.set_xlabel("produce -> visible in the Delta table (s)")
    ax.set_ylabel("fraction of records")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def render(results: Path = RESULTS) -> Path:
    """Write report.md (and its PNGs) beside the JSON results; returns the report's path."""
    latest = _load(results / "latest.json")
    if latest is None:
        msg = f"no {results / 'latest.json'}: run `make bench` first"
        raise FileNotFoundError(msg)
    peers = _load(results / "peers.json")
    bars = throughput_bars(latest, peers)
    lines = [
        "# stream-etl benchmark report",
        "",
        f"Run {latest.get('run_id')} at {latest.get('timestamp')}: {latest.get('records'):,} records, "
        f"{latest.get('partitions')} partitions, median of {latest.get('repeat')} repeat(s); "
        f"machine: {latest.get('machine', {}).get('cpu_count')} cores, {latest.get('machine', {}).get('cpu_model')}.",
        "Rates are records / seconds from process start to the last Delta commit; steady rates "
        "count from the first commit.",
        "",
        "## Throughput",
        "",
        "![throughput](throughput.png)",
        "",
        "| pipeline | rows/s | steady rows/s |",
        "| --- | ---: | ---: |",
        *[f"| {label} | {_fmt(e2e)} | {_fmt(steady)} |" for label, e2e, steady in bars],
        "",
        "## Targets",
        "",
        "| target | goal | measured | met |",
        "| --- | --- | ---: | --- |",
        *[
            f"| {name} | {t['goal']} | {_fmt(t['measured'], 3)} | {_fmt(t['met'])} |"
            for name, t in latest.get("targets", {}).items()
        ],
        "",
    ]
    if "freshness_p99_s" in latest:
        lines += [
            "## Freshness",
            "",
            f"{latest.get('freshness_rate'):,} records/s for {latest.get('freshness_seconds')} s, 1 s trigger: "
            f"p50 {latest['freshness_p50_s']} s, p95 {latest['freshness_p95_s']} s, "
            f"p99 {latest['freshness_p99_s']} s, max {latest.get('freshness_max_s')} s.",
            "",
            "![freshness CDF](freshness_cdf.png)",
            "",
        ]
    if "e2e_two_workers_rows_per_s" in latest:
        lines += [
            "## One worker vs two",
            "",
            f"Two workers in one consumer group: {_fmt(latest['e2e_two_workers_rows_per_s'])} rows/s "
            f"({_fmt(latest.get('e2e_two_workers_vs_one'), 2)} x one worker), steady "
            f"{_fmt(latest.get('e2e_two_workers_steady_rows_per_s'))}; first commit after "
            f"{_fmt(latest.get('e2e_two_workers_first_commit_s'), 2)} s. On this 2-core machine the second "
            "worker brings no new core: the broker, S3 and both workers share two, and the group has to "
            "rebalance when the second member joins before either reads at full speed. Both workers also "
            "start reading every partition while the group runs its join (read during the join, with "
            "the batches written ahead): the group gives each half, so each drops what it read and "
            "wrote, and reads its half again; a lone worker keeps all of it, which is why one worker "
            "finishes sooner here. When the first worker is caught up it leaves, and the group "
            "rebalances once more. Across machines each worker brings its own cores and the "
            "partitions divide between them.",
            "",
        ]
    if "wide_rows_per_s" in latest:
        lines += [
            "## Wide records",
            "",
            f"{latest.get('wide_records'):,} records of ~{_fmt(latest.get('wide_record_bytes_avg'))} bytes, "
            f"50 columns: {_fmt(latest['wide_rows_per_s'])} rows/s, {_fmt(latest.get('wide_mb_per_s'), 1)} MB/s "
            f"of JSON, peak RSS {_fmt(latest.get('wide_peak_rss_mb'))} MB.",
            "",
        ]
    limits = {k: v for k, v in latest.items() if k.startswith("limit_")}
    if limits:
        lines += ["## Limits on this machine (one thread)", ""]
        lines += [f"- {k.removeprefix('limit_').replace('_', ' ')}: {_fmt(v)}" for k, v in limits.items()]
        lines.append("")
    report = results / "report.md"
    if bars:
        _plot_throughput(bars, results / "throughput.png")
    if latest.get("freshness_cdf"):
        _plot_freshness(latest["freshness_cdf"], results / "freshness_cdf.png")
    report.write_text("\n".join(lines))
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder with latest.json (and peers.json)")
    args = parser.parse_args(argv)
    try:
        print(render(args.results))
    except FileNotFoundError as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
