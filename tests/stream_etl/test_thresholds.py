"""Error thresholds stop a run before it commits the batch that crossed them."""

from __future__ import annotations

import pytest

from stream_etl import RunContext, Topology
from stream_etl.dead_letters import Failure
from stream_etl.errors import ConfigurationError, ErrorThresholdExceeded
from stream_etl.runloop import RunLoop
from stream_etl.testing import ListSource, MemorySink
from stream_etl.thresholds import ErrorThresholds


def _failures(step: str, rows: range) -> list[Failure]:
    return [Failure(row, step, "ValueError", "bad") for row in rows]


def test_a_count_limit_allows_that_many_and_no_more() -> None:
    thresholds = ErrorThresholds(total=3)
    thresholds.add(100, _failures("decode", range(3)))

    with pytest.raises(ErrorThresholdExceeded, match="dead-lettered 4 of 200 records") as caught:
        thresholds.add(100, _failures("decode", range(1)))
    assert (caught.value.step, caught.value.failed, caught.value.seen) == (None, 4, 200)


def test_a_fraction_waits_for_enough_records() -> None:
    thresholds = ErrorThresholds(total=0.1)
    thresholds.add(10, _failures("decode", range(5)))  # 50% of 10 records: too few to judge

    with pytest.raises(ErrorThresholdExceeded, match=r"at most 10\.00% of the records read"):
        thresholds.add(90, _failures("decode", range(10)))  # 15 of 100


def test_a_step_limit_counts_only_that_step_and_a_record_once() -> None:
    thresholds = ErrorThresholds(per_step={"parse": 1})
    thresholds.add(100, _failures("other", range(50)) + _failures("parse", range(1)) + _failures("parse", range(1)))

    with pytest.raises(ErrorThresholdExceeded, match="step 'parse' dead-lettered 2"):
        thresholds.add(100, _failures("parse", range(1)))


@pytest.mark.parametrize(
    "limit", [-1, 1.5, 0.0, True, "10"], ids=["negative", "above-one", "zero-fraction", "bool", "text"]
)
def test_a_bad_limit_fails_fast(limit: object) -> None:
    with pytest.raises(ConfigurationError, match="a count .* or a fraction"):
        Topology("t", max_errors=limit)  # type: ignore[arg-type]


def test_a_limit_for_an_unknown_step_fails_fast() -> None:
    topology = Topology("t", step_max_errors={"nope": 1})
    topology.source(ListSource([])).filter("a > 1", name="f").sink(MemorySink("out"))
    with pytest.raises(ConfigurationError, match=r"\['nope'\].*'decode'"):
        topology.validate()


def test_the_run_stops_before_committing_the_batch_that_crossed_the_limit() -> None:
    sink, dead = MemorySink("out"), MemorySink("dead")
    records = [{"id": i} for i in range(40)] + [b"not json"] * 5 + [{"id": i} for i in range(40, 80)]
    topology = Topology("limited", max_batch_records=40, step_max_errors={"decode": 3}, dead_letters=dead)
    topology.source(ListSource(records)).sink(sink)

    with pytest.raises(ErrorThresholdExceeded, match="step 'decode' dead-lettered 5"):
        RunLoop(topology, RunContext(app_id="limited", mode="until_caught_up")).run()

    assert sink.table()["id"].to_pylist() == list(range(40))  # the first batch only
    assert dead.tables == []  # the failing batch committed nothing, dead letters included
