"""Scenario (b): the same orders through a richer topology (dedupe, SQL, enrich).

Runs topologies/orders_rich.py over the topic the main comparison produced, in a fresh
process, measured and verified exactly like the simple topology, and records
``e2e_rich_rows_per_s`` (and its steady-state rate) beside the simple topology's
``e2e_rows_per_s``. The issue's goal: the rich rate is at least half the simple one.
"""

from __future__ import annotations

from pathlib import Path

from bench.scenarios import Context, Outcome

TOPOLOGY = Path(__file__).resolve().parents[2] / "topologies" / "orders_rich.py"
GOAL = 0.5


def rich(context: Context) -> Outcome:
    from bench.run import measure_engine

    measured = measure_engine(
        context.stack, context.produced, context.run_id, context.args, context.logs, topology=TOPOLOGY, label="rich"
    )
    simple = context.main_figures.get("e2e_rows_per_s")
    rate = measured["e2e_rows_per_s"]
    ratio = round(rate / simple, 3) if rate and simple else None
    figures = {
        "e2e_rich_rows_per_s": rate,
        "e2e_rich_steady_rows_per_s": measured["e2e_steady_rows_per_s"],
        "e2e_rich_peak_rss_mb": measured["peak_rss_mb"],
        "e2e_rich_cpu_s": measured["e2e_cpu_s"],
        "e2e_rich_vs_simple": ratio,
        "e2e_rich_goal_met": ratio is not None and ratio >= GOAL,
    }
    return Outcome(figures=figures, problems=list(measured["problems"]))
