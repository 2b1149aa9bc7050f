"""Machine description, the results file, and the summary printed at the end."""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import psutil
from rich.console import Console
from rich.table import Table

PACKAGES = ("pyarrow", "deltalake", "confluent-kafka", "orjson", "duckdb", "stream-etl")


def machine_info(root: Path) -> dict[str, Any]:
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    with contextlib.suppress(ImportError):
        import confluent_kafka

        versions["librdkafka"] = confluent_kafka.libversion()[0]
    return {
        "cpu_count": os.cpu_count(),
        "cpu_physical": psutil.cpu_count(logical=False),
        "cpu_model": _cpu_model(),
        "memory_gb": round(psutil.virtual_memory().total / 1e9, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "libraries": versions,
        "git": _git(root),
        "load_avg": [round(x, 2) for x in os.getloadavg()],
    }


def _cpu_model() -> str | None:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return None


def _git(root: Path) -> dict[str, Any] | None:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "dirty": bool(dirty)}


def write_results(results: dict[str, Any], out: Path, history: Path | None) -> None:
    """``out`` atomically (through a .tmp file); one compact line appended to ``history``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(results, indent=2) + "\n")
    tmp.replace(out)
    if history is not None:
        history.parent.mkdir(parents=True, exist_ok=True)
        with history.open("a") as handle:
            handle.write(json.dumps(results, separators=(",", ":")) + "\n")


def _num(value: Any, digits: int = 0, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and digits:
        return f"{value:,.{digits}f}{unit}"
    return f"{round(value):,}{unit}"


def print_summary(results: dict[str, Any], console: Console | None = None) -> None:
    if console is None:
        console = Console()
        if not console.is_terminal:  # a log or a pipe: do not wrap the table at 80 columns
            console = Console(width=130)
    runs: list[dict[str, Any]] = results.get("runs", [])
    table = Table(title=f"stream-etl bench: {results['records']:,} records, {results['partitions']} partitions")
    table.add_column("measure")
    columns = ["headline" if len(runs) > 1 else "result"]
    if len(runs) > 1:
        columns += [f"run {i + 1}" for i in range(len(runs))]
    for column in columns:
        table.add_column(column, justify="right")

    def row(label: str, key: str, digits: int = 0, unit: str = "") -> None:
        values = [results.get(key)]
        if len(runs) > 1:
            values += [r.get(key) for r in runs]
        table.add_row(label, *(_num(v, digits, unit) for v in values))

    row("produce (msg/s)", "produce_msgs_per_s")
    row("bare consumer, from process start (msg/s)", "raw_consume_msgs_per_s")
    row("bare consumer, steady (msg/s)", "raw_consume_steady_msgs_per_s")
    row("bare consumer: start -> first record (s)", "raw_first_record_s", 2)
    row("bare consumer: start -> last record (s)", "raw_total_s", 2)
    row("engine e2e, from process start (rec/s)", "e2e_rows_per_s")
    row("engine e2e, steady (rec/s)", "e2e_steady_rows_per_s")
    row("engine e2e, to process exit (rec/s)", "e2e_exit_rows_per_s")
    row("engine: start -> first commit (s)", "e2e_first_commit_s", 2)
    row("engine: start -> last commit (s)", "e2e_total_s", 2)
    row("engine: last commit -> exit (s)", "e2e_shutdown_s", 2)
    row("ratio e2e / bare consumer", "ratio", 3)
    row("ratio, steady", "steady_ratio", 3)
    row("engine peak RSS (MB)", "peak_rss_mb", 1)
    row("engine CPU (s)", "e2e_cpu_s", 2)
    row("bare consumer peak RSS (MB)", "raw_peak_rss_mb", 1)
    if "e2e_assign_rows_per_s" in results:
        row("direct mode: bare consumer (msg/s)", "raw_consume_assign_msgs_per_s")
        row("direct mode: engine e2e (rec/s)", "e2e_assign_rows_per_s")
        row("direct mode: engine steady (rec/s)", "e2e_assign_steady_rows_per_s")
        row("direct mode: ratio e2e / bare", "ratio_assign", 3)
    if "freshness_p99_s" in results:
        row("freshness p50 (s)", "freshness_p50_s", 3)
        row("freshness p95 (s)", "freshness_p95_s", 3)
        row("freshness p99 (s)", "freshness_p99_s", 3)
    if "e2e_rich_rows_per_s" in results:
        row("rich topology e2e (rec/s)", "e2e_rich_rows_per_s", 0)
        row("rich topology, steady (rec/s)", "e2e_rich_steady_rows_per_s", 0)
        row("rich topology, direct mode (rec/s)", "e2e_rich_assign_rows_per_s", 0)
        row("rich / simple topology, direct mode", "e2e_rich_vs_simple", 3)
        row("rich / simple topology, group mode", "e2e_rich_vs_simple_group", 3)
    console.print(table)

    engine = results.get("engine_summary", {}).get("stats", {})
    if engine:
        keys = (
            "records_in",
            "written",
            "filtered",
            "dead_lettered",
            "batches",
            "commits",
            "decode_s",
            "transform_s",
            "commit_s",
        )
        console.print("engine summary: " + ", ".join(f"{k} {engine.get(k)}" for k in keys))
    for name, target in results.get("targets", {}).items():
        verdict = "[green]met[/green]" if target["met"] else "[red]MISSED[/red]"
        console.print(f"target {name}: {target['goal']} -> measured {target['measured']}: {verdict}")
    for warning in results.get("contended", []):
        console.print(f"[yellow]warning:[/yellow] {warning}: the figures are not representative")
    verified = results.get("verified")
    console.print(
        "output table: " + ("[green]verified[/green]" if verified else f"[red]WRONG[/red] {results.get('problems')}")
    )
