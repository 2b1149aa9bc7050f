"""Pure parts of the peers suite: rates from a Delta table's commits, the output check, and
the entries of bench/results/peers.json. Nothing here touches a process or a service."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

import pyarrow as pa

from bench.checks import Expected, verify_table
from bench.peers.peer_common import COLUMNS, REPORT_MARKER


@dataclass(frozen=True, slots=True)
class PeerCommits:
    """A peer's Delta commits: when each was made and how many rows it added."""

    versions: int
    first_at: float | None
    last_at: float | None
    first_rows: int
    rows: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def peer_commits(history: list[dict[str, Any]]) -> PeerCommits:
    """From ``DeltaTable.history()``: commit timestamps (s since the epoch, written by the peer's
    process) and rows added per commit (``operationMetrics.num_added_rows``). The table's
    creation is the first write, so every commit counts."""
    commits = sorted(history, key=lambda c: c["version"])
    rows = [int((c.get("operationMetrics") or {}).get("num_added_rows", 0)) for c in commits]
    stamps = [c["timestamp"] / 1000 for c in commits]
    return PeerCommits(
        versions=len(commits),
        first_at=stamps[0] if stamps else None,
        last_at=stamps[-1] if stamps else None,
        first_rows=rows[0] if rows else 0,
        rows=sum(rows),
    )


def file_commits(report: dict[str, Any]) -> PeerCommits:
    """The writes of a peer that writes a file, from its app's report: when the first data
    rows appeared in the file (and how many), and its last modification time."""
    return PeerCommits(
        versions=1,
        first_at=report.get("first_write_at"),
        last_at=report.get("last_write_at"),
        first_rows=int(report.get("first_rows") or 0),
        rows=int(report.get("written") or 0),
    )


def csv_rows(table: pa.Table) -> tuple[pa.Table | None, list[str]]:
    """The rows of a CSV written by Pathway (``pw.io.csv.write``): every ``diff`` must be +1
    (an insertion); ``order_id`` is ``id``; the ``time`` and ``diff`` columns go."""
    import pyarrow.compute as pc

    names = table.column_names
    if "diff" not in names or "order_id" not in names:
        return None, [f"the file has the columns {names}, expected order_id, ..., time, diff"]
    problems = []
    retractions = table.num_rows - int(pc.sum(pc.equal(table["diff"], 1)).as_py() or 0)
    if retractions:
        problems.append(f"{retractions:,} rows of the file are not insertions (diff != 1)")
    kept = table.drop_columns([c for c in ("time", "diff") if c in names])
    return kept.rename_columns(["id" if c == "order_id" else c for c in kept.column_names]), problems


def rates(
    records: int, launched_at: float, first_at: float | None, last_at: float | None, first_rows: int, rows: int
) -> dict[str, float | None]:
    """The engine's measures, applied to a peer.

    ``rows_per_s``: input records / seconds from the process launch to the last write.
    ``steady_rows_per_s``: records after the first write / seconds between the first and the
    last write. A peer stores no source positions, so the input records of its first write are
    estimated from the rows it wrote (``first_rows * records / rows``: the filter drops a
    uniform share of the orders).
    """
    if last_at is None or last_at <= launched_at:
        return {"rows_per_s": None, "steady_rows_per_s": None, "first_commit_s": None, "total_s": None}
    total_s = last_at - launched_at
    steady = None
    if first_at is not None and last_at > first_at and rows > 0:
        first_records = first_rows * records / rows
        steady = round((records - first_records) / (last_at - first_at), 1)
    return {
        "rows_per_s": round(records / total_s, 1),
        "steady_rows_per_s": steady,
        "first_commit_s": round(first_at - launched_at, 3) if first_at is not None else None,
        "total_s": round(total_s, 3),
    }


def verify_output(table: pa.Table, expected: Expected, *, written: int | None) -> list[str]:
    """Problems with a peer's output (empty when right): the projected columns, then
    ``bench.checks.verify_table`` (row count, distinct ids, sum(id), sum(amount_cents)), and the
    rows the app says it wrote. Peers store no source positions, so none are checked."""
    problems: list[str] = []
    names = tuple(table.column_names)
    if set(names) != set(COLUMNS):
        problems.append(f"the table has the columns {list(names)}, expected {list(COLUMNS)}")
    if {"id", "amount_cents"} <= set(names):
        problems += verify_table(table.select(["id", "amount_cents"]), expected, stored_positions={}, ends={})
    else:
        problems.append("cannot check the rows: id or amount_cents is missing")
    if written is not None and written != expected.rows:
        problems.append(f"the app reports {written:,} rows written, expected {expected.rows:,}")
    return problems


def read_report(stdout: str) -> dict[str, Any]:
    """The last report an app printed (``PEER-REPORT {json}``), or ``{}``."""
    for line in reversed(stdout.splitlines()):
        at = line.find(REPORT_MARKER)
        if at >= 0:
            found: dict[str, Any] = json.loads(line[at + len(REPORT_MARKER) :])
            return found
    return {}


def failed_entry(name: str, package: str, version: str, stage: str, error: str) -> dict[str, Any]:
    """A peer that could not be installed or run: recorded, not fatal to the suite."""
    return {
        "peer": name,
        "package": package,
        "version": version,
        "ok": False,
        "stage": stage,
        "error": error[-4000:],
        "rows_per_s": None,
        "steady_rows_per_s": None,
        "verified": False,
        "problems": [f"{stage}: {error.strip().splitlines()[-1] if error.strip() else 'failed'}"],
    }


def fastest(entries: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The fastest verified peer, end to end and in steady state (each may be another peer)."""
    good = {n: e for n, e in entries.items() if e.get("verified") and e.get("rows_per_s")}
    if not good:
        return {"peer": None, "rows_per_s": None, "steady_peer": None, "steady_rows_per_s": None}
    best = max(good, key=lambda n: good[n]["rows_per_s"])
    steady = {n: e for n, e in good.items() if e.get("steady_rows_per_s")}
    best_steady = max(steady, key=lambda n: steady[n]["steady_rows_per_s"]) if steady else None
    return {
        "peer": best,
        "rows_per_s": good[best]["rows_per_s"],
        "steady_peer": best_steady,
        "steady_rows_per_s": steady[best_steady]["steady_rows_per_s"] if best_steady else None,
    }


def engine_comparison(latest: dict[str, Any] | None, best: dict[str, Any], records: int) -> dict[str, Any] | None:
    """The engine's figures from ``bench/results/latest.json`` (another run of ``make bench``)
    against the fastest peer: the issue's target is the faster mode >= 2.5 x the fastest peer,
    end to end and steady. Only runs over the same number of records compare (start-up
    weighs more on a small run)."""
    if not latest or not best.get("rows_per_s") or latest.get("records") != records:
        return None
    modes = {
        "group": (latest.get("e2e_rows_per_s"), latest.get("e2e_steady_rows_per_s")),
        "direct": (latest.get("e2e_assign_rows_per_s"), latest.get("e2e_assign_steady_rows_per_s")),
    }
    modes = {m: v for m, v in modes.items() if v[0]}
    if not modes:
        return None
    mode = max(modes, key=lambda m: modes[m][0] or 0)
    e2e, steady = modes[mode]
    ratio = round(e2e / best["rows_per_s"], 2) if e2e else None
    steady_ratio = round(steady / best["steady_rows_per_s"], 2) if steady and best.get("steady_rows_per_s") else None
    return {
        "from": "bench/results/latest.json",
        "timestamp": latest.get("timestamp"),
        "records": latest.get("records"),
        "mode": mode,
        "e2e_rows_per_s": e2e,
        "e2e_steady_rows_per_s": steady,
        "vs_fastest_peer": ratio,
        "steady_vs_fastest_peer": steady_ratio,
        "goal": ">= 2.5",
        "met": bool(ratio and steady_ratio and ratio >= 2.5 and steady_ratio >= 2.5),
    }
