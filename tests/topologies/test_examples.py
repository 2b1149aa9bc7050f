"""The example topologies, run with the in-memory harness and checked against plain-Python
references that follow the documented semantics record by record."""

from __future__ import annotations

import csv
import math
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from stream_etl.loader import load_topology
from stream_etl.samples import click, order, reading
from stream_etl.testing import run_topology

ROOT = Path(__file__).resolve().parents[2]


def _sql_round(value: float) -> int:
    """SQL ROUND: halves away from zero (Python's round() goes to the even neighbour)."""
    return int(math.copysign(math.floor(abs(value) + 0.5), value))


def _micros(ts: str) -> int:
    return int(datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp() * 1_000_000)


def _dedupe(records: list[dict[str, Any]], key: str, horizon: timedelta) -> list[dict[str, Any]]:
    """Keep a record unless its key was kept at an event time within ``horizon`` of the watermark."""
    watermark, first, kept = -(2**63), {}, []
    window = int(horizon.total_seconds() * 1_000_000)
    for r in records:
        t = _micros(r["ts"])
        previous = first.get(r[key])
        if previous is None or previous < watermark - window:
            first[r[key]] = t
            kept.append(r)
        watermark = max(watermark, t)
    return kept


def _windows(records: list[dict[str, Any]], keys: list[str], size: timedelta, lateness: timedelta, value: str | None):
    """Tumbling windows; closed ones only; late records returned apart."""
    size_us, late_us = int(size.total_seconds() * 1e6), int(lateness.total_seconds() * 1e6)
    watermark, open_windows, closed, late = -(2**63), {}, {}, []
    for r in records:
        t = _micros(r["ts"])
        start = t // size_us * size_us
        group = (*[r[k] for k in keys], start)
        if start + size_us + late_us <= watermark:
            late.append(r)
        else:
            open_windows.setdefault(group, []).append(r)
        watermark = max(watermark, t)
        for g in [g for g in open_windows if g[-1] + size_us + late_us <= watermark]:
            closed[g] = open_windows.pop(g)
    return closed, late


@pytest.mark.parametrize("batch", ["97", "1000"], ids=lambda b: f"batch-{b}")
def test_iot_windows_match_the_reference(batch: str) -> None:
    records = [reading(i) for i in range(6000)]
    topology = load_topology(str(ROOT / "topologies" / "iot_windows.py"), args={"batch_records": batch})

    result = run_topology(topology, records)

    kept = _dedupe(records, "reading_id", timedelta(minutes=10))
    closed, late = _windows(kept, ["device"], timedelta(minutes=1), timedelta(seconds=10), "temperature")
    expected = []
    for (device, start), rows in closed.items():
        total = 0.0
        for r in rows:
            total += r["temperature"]
        expected.append((device, start, len(rows), total / len(rows), max(r["temperature"] for r in rows)))
    got = [
        (
            r["device"],
            int(r["window_start"].timestamp() * 1_000_000),
            r["readings"],
            r["mean_temperature"],
            r["max_temperature"],
        )
        for r in result.output().to_pylist()
    ]
    assert sorted(got) == sorted(expected)
    assert sorted(result.dead_letters["raw"].to_pylist()) == sorted(orjson.dumps(r) for r in late)
    assert len(records) - len(kept) > 50 and len(late) > 5  # the data exercise both steps


def test_clickstream_matches_the_reference() -> None:
    records = [click(i) for i in range(5000)]
    topology = load_topology(str(ROOT / "topologies" / "clickstream.py"))

    result = run_topology(topology, records)

    kept = _dedupe(records, "click_id", timedelta(minutes=1))
    closed, late = _windows(kept, ["user", "page"], timedelta(minutes=1), timedelta(seconds=5), None)
    expected = sorted((user, page, start, len(rows)) for (user, page, start), rows in closed.items())
    got = sorted(
        (r["user"], r["page"], int(r["window_start"].timestamp() * 1_000_000), r["views"])
        for r in result.output().to_pylist()
    )
    assert got == expected
    assert result.summary.stats["dead_lettered"] == len(late)
    assert len(records) - len(kept) == len([i for i in range(5000) if i % 23 == 22])


def test_orders_enriched_match_the_reference() -> None:
    records = [order(i) for i in range(2000)]
    topology = load_topology(str(ROOT / "topologies" / "orders_enriched.py"))

    result = run_topology(topology, records)

    with (ROOT / "topologies" / "data" / "countries.csv").open() as handle:
        countries = {row["code"]: row for row in csv.DictReader(handle)}
    expected = sorted(
        (
            o["id"],
            countries[o["country"]]["region"],
            _sql_round(o["amount"] * 100),
            _sql_round(o["amount"] * 100 * float(countries[o["country"]]["vat_rate"])),
        )
        for o in records
        if o["amount"] >= 0
    )
    got = sorted((r["id"], r["region"], r["amount_cents"], r["vat_cents"]) for r in result.output().to_pylist())
    assert got == expected
    assert set(result.output().column_names) == {
        "id",
        "user",
        "country",
        "country_name",
        "region",
        "amount_cents",
        "vat_cents",
        "ts",
    }


def test_orders_rich_match_the_reference() -> None:
    unique = [order(i) for i in range(3000)]
    records = unique + [order(i) for i in range(2990, 3000)]  # re-sent orders, within the horizon
    topology = load_topology(str(ROOT / "topologies" / "orders_rich.py"), args={"batch_records": "500"})

    result = run_topology(topology, records)

    with (ROOT / "topologies" / "data" / "countries.csv").open() as handle:
        countries = {row["code"]: row for row in csv.DictReader(handle)}
    expected = sorted(
        (
            o["id"],
            countries[o["country"]]["region"],
            cents := _sql_round(o["amount"] * 100),
            _sql_round(cents * float(countries[o["country"]]["vat_rate"])),
        )
        for o in _dedupe(records, "id", timedelta(minutes=10))
        if o["amount"] >= 0
    )
    got = sorted((r["id"], r["region"], r["amount_cents"], r["vat_cents"]) for r in result.output().to_pylist())
    assert got == expected
    assert result.summary.stats["filtered"] == len(records) - len(expected) > 10


def test_kinesis_orders_matches_the_reference() -> None:
    topology = load_topology(str(ROOT / "topologies" / "kinesis_orders.py"), args={"table": "/tmp/not-used"})
    records = [orjson.dumps(order(i)) for i in range(500)]

    result = run_topology(topology, records, partitions=4)

    expected = sorted((o["id"], _sql_round(o["amount"] * 100)) for o in map(order, range(500)) if o["amount"] >= 0)
    out = result.output()
    assert sorted(zip(out["id"].to_pylist(), out["amount_cents"].to_pylist(), strict=True)) == expected
    assert out.column_names == ["id", "user", "amount_cents", "country", "ts", "tags"]
