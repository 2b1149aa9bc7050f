"""bench.peers: the pure parts (rounding, rates, the output check, result entries, options),
and one real run of the quickest peer (Bytewax) over 20,000 records against the services."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from bench.checks import expected_output
from bench.peers import results
from bench.peers.peer_common import COLUMNS, OUTPUT_SCHEMA, REPORT_MARKER, amount_cents, keep, project, transform
from bench.peers.suite import parse_args, peer_settings
from bench.peers.venvs import PEERS
from stream_etl.samples import orders

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("amount", "cents"),
    [(0.125, 13), (0.135, 14), (1.005, 100), (2.675, 268), (0.0, 0), (-0.125, -13), (-1.5, -150), (12.345, 1235)],
    ids=lambda v: str(v),
)
def test_amount_cents_rounds_ties_away_from_zero(amount: float, cents: int) -> None:
    assert amount_cents(amount) == cents


def test_amount_cents_matches_arrows_half_towards_infinity_on_the_samples() -> None:
    amounts = [json.loads(value)["amount"] for value in orders(5000)]
    amounts += [k / 1000 for k in range(-2000, 2000)]  # every x.xx5 tie
    arrow = pc.round(pc.multiply(pa.array(amounts, pa.float64()), 100), round_mode="half_towards_infinity")
    assert [amount_cents(a) for a in amounts] == [int(v) for v in arrow.to_pylist()]


def test_transform_filters_derives_and_projects() -> None:
    order = {"id": 7, "user": "u7", "amount": 10.005, "ts": "2024-01-01T00:00:00Z", "country": "FR", "tags": ["a"]}
    row = transform(order)
    assert row == {"id": 7, "user": "u7", "amount_cents": 1001, "country": "FR", "ts": order["ts"], "tags": ["a"]}
    assert tuple(row) == COLUMNS == tuple(OUTPUT_SCHEMA.names)
    assert transform({**order, "amount": -0.01}) is None
    assert not keep({**order, "amount": None})
    assert project({**order, "amount": 0.0})["amount_cents"] == 0


def _output(values: list[bytes]) -> pa.Table:
    rows = [r for r in (transform(json.loads(v)) for v in values) if r is not None]
    return pa.Table.from_pylist(rows, schema=OUTPUT_SCHEMA)


def test_verify_output_accepts_the_right_table_and_names_what_is_wrong() -> None:
    values = list(orders(3000))
    expected = expected_output(values)
    table = _output(values)
    assert expected.rows < expected.records  # the samples hold negative amounts
    assert results.verify_output(table, expected, written=expected.rows) == []

    doubled = pa.concat_tables([table, table.slice(0, 5)])
    problems = results.verify_output(doubled, expected, written=doubled.num_rows)
    assert any("rows, expected" in p for p in problems)
    assert any("5 duplicate ids" in p for p in problems)
    assert any("the app reports" in p for p in problems)

    wrong_cents = table.set_column(2, "amount_cents", pc.add(table["amount_cents"], 1))
    assert any("sum(amount_cents)" in p for p in results.verify_output(wrong_cents, expected, written=None))

    missing = table.drop_columns(["tags"])
    assert any("columns" in p for p in results.verify_output(missing, expected, written=None))
    assert any("cannot check" in p for p in results.verify_output(table.drop_columns(["id"]), expected, written=None))


def _commit(version: int, at_s: float, rows: int) -> dict[str, Any]:
    return {"version": version, "timestamp": int(at_s * 1000), "operationMetrics": {"num_added_rows": rows}}


def test_rates_follow_the_engines_definitions() -> None:
    history = [_commit(2, 130.0, 49_500), _commit(0, 110.0, 99_000), _commit(1, 120.0, 49_500)]
    commits = results.peer_commits(history)
    assert commits.versions == 3 and commits.rows == 198_000 and commits.first_rows == 99_000
    assert (commits.first_at, commits.last_at) == (110.0, 130.0)
    figures = results.rates(200_000, 100.0, commits.first_at, commits.last_at, commits.first_rows, commits.rows)
    # 200,000 records in 30 s from launch; the first commit held half the rows, so half the
    # records: 100,000 more records in the 20 s after it.
    assert figures == {"rows_per_s": 6666.7, "steady_rows_per_s": 5000.0, "first_commit_s": 10.0, "total_s": 30.0}


def test_rates_without_commits_or_with_one_commit() -> None:
    empty = results.peer_commits([])
    assert results.rates(10, 1.0, empty.first_at, empty.last_at, 0, 0)["rows_per_s"] is None
    one = results.rates(1000, 100.0, 104.0, 104.0, 990, 990)
    assert one["rows_per_s"] == 250.0 and one["steady_rows_per_s"] is None


def test_read_report_finds_the_marker_behind_a_logging_prefix() -> None:
    stdout = (
        "some output\n"
        f'[2026-01-01 00:00:00,000] [1] [WARNING] {REPORT_MARKER}{{"written": 5, "settings": {{"a": 1}}}} \n'
        "shutting down\n"
    )
    assert results.read_report(stdout) == {"written": 5, "settings": {"a": 1}}
    assert results.read_report("no report\n") == {}


def test_failed_peers_are_recorded_and_not_fastest() -> None:
    failed = results.failed_entry("faust", "faust-streaming", "0.15.3", "install", "pip says\nERROR: no such version")
    assert failed["ok"] is False and failed["rows_per_s"] is None
    assert failed["problems"] == ["install: ERROR: no such version"]
    entries = {
        "faust": failed,
        "quix": {"verified": True, "rows_per_s": 30_000.0, "steady_rows_per_s": 40_000.0},
        "bytewax": {"verified": True, "rows_per_s": 50_000.0, "steady_rows_per_s": 35_000.0},
        "pathway": {"verified": False, "rows_per_s": 90_000.0, "steady_rows_per_s": 95_000.0},
    }
    assert results.fastest(entries) == {
        "peer": "bytewax",
        "rows_per_s": 50_000.0,
        "steady_peer": "quix",
        "steady_rows_per_s": 40_000.0,
    }
    assert results.fastest({"faust": failed})["peer"] is None


def test_engine_comparison_takes_the_faster_mode_of_the_same_data_set() -> None:
    best = {"peer": "bytewax", "rows_per_s": 50_000.0, "steady_rows_per_s": 60_000.0}
    latest = {
        "records": 1_000_000,
        "timestamp": "t",
        "e2e_rows_per_s": 120_000.0,
        "e2e_steady_rows_per_s": 200_000.0,
        "e2e_assign_rows_per_s": 140_000.0,
        "e2e_assign_steady_rows_per_s": 160_000.0,
    }
    compared = results.engine_comparison(latest, best, 1_000_000)
    assert compared is not None
    assert (compared["mode"], compared["vs_fastest_peer"], compared["steady_vs_fastest_peer"]) == ("direct", 2.8, 2.67)
    assert compared["met"] is True
    assert results.engine_comparison({**latest, "e2e_assign_rows_per_s": None}, best, 1_000_000)["met"] is False
    assert results.engine_comparison(latest, best, 20_000) is None
    assert results.engine_comparison(None, best, 1_000_000) is None


def test_options() -> None:
    args = parse_args(["--peers", "bytewax, quix", "--records", "500", "--set", "quix.commit_every=5000"])
    assert args.peers == ["bytewax", "quix"] and args.records == 500
    assert args.settings == {"quix": {"commit_every": 5000}}
    assert peer_settings(["faust.store=rocksdb://", "bytewax.tail=false"]) == {
        "faust": {"store": "rocksdb://"},
        "bytewax": {"tail": False},
    }
    for bad in (["--peers", "flink"], ["--set", "flink.x=1"], ["--set", "quix.commit_every"], ["--records", "0"]):
        with pytest.raises(SystemExit):
            parse_args(bad)


def test_requirements_pin_the_projects_delta_writer_and_parser() -> None:
    from importlib import metadata

    pins = {name: metadata.version(name) for name in ("deltalake", "pyarrow", "orjson")}
    assert PEERS["quix"].requirements() == [
        "quixstreams==3.28.1",
        *(f"{name}=={version}" for name, version in pins.items()),
    ]
    assert PEERS["bytewax"].requirements()[0] == "bytewax[kafka]==0.21.1"
    assert "aiokafka[lz4]" in PEERS["faust"].requirements()
    pathway = PEERS["pathway"].requirements()
    assert "pyarrow" in pathway and f"deltalake=={pins['deltalake']}" in pathway
    for peer in PEERS.values():
        assert peer.app_path.is_file()
        assert peer.venv.parent == ROOT / "bench" / ".peers"


@pytest.mark.slow
def test_bytewax_runs_for_real(services: Any, tmp_path: Path) -> None:
    """The whole suite for one peer against the test services: installs Bytewax into
    bench/.peers/bytewax if it is not there yet, produces 20,000 orders, runs the app,
    checks its table and writes the results. The test suite downloads nothing: it runs
    once `make bench-peers` (or `python -m bench.peers --setup-only`) made the virtualenv."""
    if not (PEERS["bytewax"].venv / ".installed.json").is_file():
        pytest.skip("no Bytewax virtualenv: `python -m bench.peers --peers bytewax --setup-only` makes it")
    out = tmp_path / "peers.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAM_ETL_")}
    env.update(services.environment())
    env["STREAM_ETL_BENCH_BUCKET"] = services.bucket
    done = subprocess.run(
        [sys.executable, "-m", "bench.peers", "--peers", "bytewax", "--records", "20000", "--wait-quiet", "0"]
        + ["--timeout", "240", "--out", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:] + done.stdout[-2000:]
    found = json.loads(out.read_text())
    entry = found["peers"]["bytewax"]
    assert entry["verified"] is True and entry["problems"] == []
    assert entry["version"] == "0.21.1" and entry["versions"]["deltalake"]
    assert entry["rows"] == found["expected"]["rows"] == entry["app_report"]["written"]
    assert entry["rows_per_s"] > 0 and entry["commits"]["versions"] >= 1
    assert entry["settings"]["batch_size"] == 1000 and entry["settings"]["add_config"]["fetch.queue.backoff.ms"] == "10"
    assert found["fastest"]["peer"] == "bytewax"
    assert "bytewax" in done.stdout


def test_csv_rows_of_pathways_writer() -> None:
    written = pa.table(
        {
            "order_id": [1, 2],
            "user": ["a", "b"],
            "amount_cents": [100, 250],
            "country": ["DE", "FR"],
            "ts": ["t", "t"],
            "tags": ['("x",)', "()"],
            "time": [10, 12],
            "diff": [1, 1],
        }
    )
    rows, problems = results.csv_rows(written)
    assert problems == [] and rows is not None
    assert rows.column_names == list(COLUMNS) and rows["id"].to_pylist() == [1, 2]
    retracted = written.set_column(7, "diff", pa.array([1, -1]))
    assert results.csv_rows(retracted)[1] == ["1 rows of the file are not insertions (diff != 1)"]
    assert results.csv_rows(written.drop_columns(["diff"]))[0] is None


def test_file_commits_from_the_apps_report() -> None:
    report = {"written": 990, "first_write_at": 104.0, "first_rows": 495, "last_write_at": 106.0}
    commits = results.file_commits(report)
    assert (commits.first_at, commits.last_at, commits.first_rows, commits.rows) == (104.0, 106.0, 495, 990)
    figures = results.rates(1000, 100.0, commits.first_at, commits.last_at, commits.first_rows, commits.rows)
    assert figures["rows_per_s"] == 166.7 and figures["steady_rows_per_s"] == 250.0
    assert results.file_commits({}).last_at is None
