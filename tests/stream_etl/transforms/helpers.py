"""Shared helpers for the transform tests: tables with a lineage column, named steps."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from stream_etl.dead_letters import Failure
from stream_etl.records import LINEAGE
from stream_etl.transforms import Step, run_step


def lineage(*rows: int) -> pa.Array:
    return pa.array(rows, pa.int32())


def table(columns: dict[str, Any], rows: list[int] | None = None) -> pa.Table:
    """``columns`` (arrays or lists) plus the lineage column (0..n-1 unless ``rows``)."""
    data = {k: v if isinstance(v, pa.Array | pa.ChunkedArray) else pa.array(v) for k, v in columns.items()}
    n = len(next(iter(data.values()))) if data else 0
    return pa.table({**data, LINEAGE: lineage(*(rows if rows is not None else range(n)))})


def named(step: Step, name: str = "step") -> Step:
    step.name = name
    return step


def run(step: Step, data: pa.Table, name: str = "step") -> tuple[pa.Table | None, list[Failure]]:
    failures: list[Failure] = []
    out = run_step(named(step, name), data, failures)
    return out, failures


def assert_table(actual: pa.Table | None, expected: pa.Table) -> None:
    """Equal schemas (types, names, order) and equal values."""
    assert actual is not None
    assert actual.schema.equals(expected.schema), f"\n{actual.schema}\n!=\n{expected.schema}"
    assert actual.to_pylist() == expected.to_pylist()
    assert actual.equals(expected)
