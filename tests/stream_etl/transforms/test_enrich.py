"""Enrich: joins with a lookup table from Parquet or CSV, reloaded on an interval."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from stream_etl import RunContext, Topology
from stream_etl.errors import ConfigurationError
from stream_etl.testing import ListSource, MemorySink, run_topology
from stream_etl.transforms import Enrich, FileLookup

COUNTRIES = pa.table(
    {"code": pa.array([1, 2, 3], pa.int32()), "name": ["Germany", "France", "Ünited"], "eu": [True, True, False]}
)


def _topology(lookup_uri: str, **kwargs: object) -> Topology:
    topology = Topology("enriched")
    (
        topology.source(ListSource([]))
        .enrich(FileLookup(lookup_uri, **kwargs.pop("lookup", {})), on={"country": "code"}, name="names", **kwargs)  # type: ignore[arg-type]
        .sink(MemorySink("out"), name="out")
    )
    return topology


@pytest.fixture
def parquet(tmp_path: Path) -> Path:
    path = tmp_path / "countries.parquet"
    pq.write_table(COUNTRIES, path)
    return path


def test_a_left_join_keeps_records_without_a_match(parquet: Path) -> None:
    records = [{"id": 1, "country": 1}, {"id": 2, "country": 9}, {"id": 3, "country": 3}, {"id": 4, "country": None}]
    out = run_topology(_topology(str(parquet)), records).output().sort_by("id")
    assert out.select(["id", "country", "name", "eu"]).to_pylist() == [
        {"id": 1, "country": 1, "name": "Germany", "eu": True},
        {"id": 2, "country": 9, "name": None, "eu": None},
        {"id": 3, "country": 3, "name": "Ünited", "eu": False},
        {"id": 4, "country": None, "name": None, "eu": None},
    ]


def test_an_inner_join_filters_records_without_a_match(parquet: Path) -> None:
    records = [{"id": 1, "country": 1}, {"id": 2, "country": 9}]
    result = run_topology(_topology(str(parquet), how="inner", columns=["name"]), records)
    assert result.output().select(["id", "name"]).to_pylist() == [{"id": 1, "name": "Germany"}]
    assert result.output().column_names == ["id", "country", "name"]
    assert result.summary.stats["filtered"] == 1


def test_a_key_found_twice_repeats_the_record(tmp_path: Path) -> None:
    path = tmp_path / "tags.csv"
    pacsv.write_csv(pa.table({"country": [1, 1, 2], "tag": ["a", "b", "c"]}), path)
    topology = Topology("tags")
    topology.source(ListSource([])).enrich(FileLookup(str(path), format="csv"), on="country", name="tags").sink(
        MemorySink("out"), name="out"
    )
    result = run_topology(topology, [{"id": 1, "country": 1}])
    assert sorted(result.output()["tag"].to_pylist()) == ["a", "b"]
    assert result.summary.stats["written"] == 1


def test_the_lookup_is_reloaded_on_its_interval(parquet: Path) -> None:
    step = Enrich(
        FileLookup(str(parquet)), on={"country": "code"}, columns=["name"], reload_every=timedelta(seconds=0.2)
    )
    step.name = "names"
    step.open(RunContext(app_id="t"))
    batch = pa.table({"country": pa.array([2], pa.int64()), "__stream_etl_row": pa.array([0], pa.int32())})
    assert step.apply(batch)["name"].to_pylist() == ["France"]
    pq.write_table(COUNTRIES.set_column(1, "name", pa.array(["Deutschland", "Frankreich", "?"])), parquet)
    assert step.apply(batch)["name"].to_pylist() == ["France"]  # not yet
    time.sleep(0.25)
    assert step.apply(batch)["name"].to_pylist() == ["Frankreich"]


def test_a_missing_lookup_fails_at_start(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot load the lookup"):
        run_topology(_topology(str(tmp_path / "nope.parquet")), [{"id": 1, "country": 1}])


def test_a_lookup_without_the_key_column_fails_at_start(parquet: Path) -> None:
    topology = Topology("bad")
    topology.source(ListSource([])).enrich(FileLookup(str(parquet)), on="country", name="names").sink(
        MemorySink("out"), name="out"
    )
    with pytest.raises(ConfigurationError, match=r"no column\(s\) \['country'\]"):
        run_topology(topology, [{"id": 1, "country": 1}])
