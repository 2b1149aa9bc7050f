"""Interleaved A/B runs of the engine: this checkout against another, on one topic.

    python -m bench.ab --against /tmp/base [--records 1000000] [--repeat 5] [--modes group,direct]

On a shared machine wall-clock figures swing from run to run; CPU seconds (user + system of
the engine process and its children) swing far less. This runs every variant once per repeat,
in rotating order, against the same topic (fresh app id and table each time), verifies each
table like `bench.run` does, and prints per variant and mode the median of: seconds from
launch to the last commit, CPU seconds, peak RSS, and CPU per thread group. ``--against`` is a
source tree of another version (e.g. ``git archive main | tar -x -C /tmp/base``); it runs with
this virtualenv and ``PYTHONPATH`` set to that tree; ``--env`` runs this tree with extra environment variables. Uses the stack named by
``STREAM_ETL_KAFKA_BOOTSTRAP_SERVERS``/``STREAM_ETL_S3_ENDPOINT_URL`` if set (see README), or
starts its own.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.checks import SampleValues
from bench.run import ROOT, log, measure_engine, produce_topic
from bench.stack import bench_stack

FIGURES = ("e2e_total_s", "e2e_first_commit_s", "e2e_cpu_s", "e2e_cpu_user_s", "e2e_cpu_system_s", "peak_rss_mb")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ab", description=__doc__.split("\n\n")[0])
    parser.add_argument("--against", type=Path, action="append", default=[], help="another source tree (repeatable)")
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME:K=V;K=V",
        help="a variant of this tree with extra environment variables, e.g. arena:MALLOC_ARENA_MAX=2 (repeatable)",
    )
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--modes", default="direct,group")
    parser.add_argument("--engine-arg", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--out", type=Path, help="write every run's figures here (JSON)")
    args = parser.parse_args(argv)
    args.profile = None
    variants: dict[str, tuple[Path, dict[str, str]]] = {"this": (ROOT, {})}
    variants.update({str(p): (p.resolve(), {}) for p in args.against})
    for spec in args.env:
        name, _, pairs = spec.partition(":")
        variants[name] = (ROOT, dict(pair.split("=", 1) for pair in pairs.split(";") if pair))
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    run_id = f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"
    logs = Path(tempfile.mkdtemp(prefix="stream-etl-ab-logs-"))
    samples = SampleValues(args.records)
    runs: list[dict[str, Any]] = []
    with bench_stack() as stack:
        produced = produce_topic(stack, f"ab-orders-{run_id}", samples, args.partitions)
        names = list(variants)
        for index in range(args.repeat):
            order = names[index % len(names) :] + names[: index % len(names)]
            for mode in modes:
                for name in order:
                    suffix = f"{run_id}-{index}-{mode}-{names.index(name)}"
                    job = ("assignment=direct",) if mode == "direct" else ()
                    tree, env = variants[name]
                    result = measure_engine(
                        stack, produced, suffix, args, logs, label=mode, job_args=job, source_tree=tree, env=env
                    )
                    row = {"variant": name, "mode": mode, "repeat": index, **{k: result[k] for k in FIGURES}}
                    row["threads"] = result["e2e_threads_cpu_s"]
                    row["problems"] = result["problems"]
                    runs.append(row)
                    log(f"  {mode} {name}: " + ", ".join(f"{k} {row[k]}" for k in FIGURES) + f" {row['threads']}")
    print(f"\nmedians over {args.repeat} repeat(s), {args.records:,} records")
    for mode in modes:
        for name in names:
            rows = [r for r in runs if r["variant"] == name and r["mode"] == mode]
            figures = {k: round(statistics.median(r[k] for r in rows if r[k] is not None), 3) for k in FIGURES}
            groups = {g for r in rows for g in r["threads"]}
            threads = {g: round(statistics.median(r["threads"].get(g, 0) for r in rows), 2) for g in sorted(groups)}
            print(f"{mode:7s} {name}: {figures} {threads}")
    problems = [f"{r['variant']} {r['mode']} {r['repeat']}: {p}" for r in runs for p in r["problems"]]
    for problem in problems:
        print(f"problem: {problem}")
    if args.out:
        args.out.write_text(json.dumps(runs, indent=1))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
