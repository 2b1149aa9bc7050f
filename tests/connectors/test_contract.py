"""The connector contract: every source against every sink, on the real local services.

Each case runs once per (source, sink) pair from tests/connectors/contract_cases.py (sources:
Kafka read with confluent-kafka and with aiokafka, Kinesis on kinesalite; sinks: Delta, Postgres, Parquet, Kafka):

- start position: ``earliest`` reads what is there, a second run resumes from the stored
  positions, a new job with ``latest`` reads nothing that was there;
- resume after SIGKILL: a worker process SIGKILLed mid-stream (between two commits of a
  batch), then restarted, leaves every record exactly once;
- empty input: a run over an empty stream catches up at once and writes nothing;
- bad input: malformed records are dead-lettered with their raw bytes, and
  in = written + filtered + dead-lettered;
- commit conflict (per sink): a stale writer's commit is refused (PositionConflict, or the
  sink's equivalent) and leaves nothing behind.

Each case is small (tens to a few thousand records) so the suite stays within minutes.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from stream_etl import JsonFormat, RunContext, Topology
from stream_etl.records import SourcePartition
from stream_etl.runloop import RunLoop, RunSummary
from stream_etl.samples import malformed, orders
from tests.connectors.contract_cases import CONTRACT_SCHEMA, SINKS, SOURCES, Destination, SinkCase, SourceCase
from tests.e2e.workers import ROOT, killed_at, run_worker
from tests.services import Services

pytestmark = pytest.mark.timeout(300)

TOPOLOGY = str(ROOT / "tests" / "connectors" / "contract_topology.py")


@pytest.fixture(params=SOURCES, ids=[c.name for c in SOURCES])
def stream(request: pytest.FixtureRequest, services: Services, unique: str, tmp_path: Path) -> Any:
    case: SourceCase = request.param
    return case.make(services, unique, tmp_path, request)


@pytest.fixture(params=SINKS, ids=[c.name for c in SINKS])
def dest(request: pytest.FixtureRequest, services: Services, unique: str, tmp_path: Path) -> Iterator[Destination]:
    case: SinkCase = request.param
    destination = case.make(services, unique, tmp_path)
    yield destination
    destination.cleanup()


def _run(
    services: Services, stream: Any, dest: Destination, app_id: str, *, start_from: str = "earliest"
) -> RunSummary:
    topology = Topology("contract", max_batch_records=200)
    (
        topology.source(stream.source(start_from=start_from), format=JsonFormat(CONTRACT_SCHEMA))
        .select("id", "user", "amount", "country", name="project")
        .sink(dest.sink())
    )
    return RunLoop(topology, RunContext(app_id=app_id, settings=stream.settings(), mode="until_caught_up")).run()


def test_start_position_earliest_stored_latest(services: Services, stream: Any, dest: Destination, unique: str) -> None:
    stream.append(orders(40))
    first = _run(services, stream, dest, unique)
    assert first.stats["records_in"] == 40
    assert sorted(dest.ids()) == list(range(40))

    stream.append(orders(10, start=40))
    resumed = _run(services, stream, dest, unique)
    assert resumed.stats["records_in"] == 10  # from the stored positions, not from the start
    assert sorted(dest.ids()) == list(range(50))

    latest = _run(services, stream, dest, f"{unique}-new", start_from="latest")
    assert latest.caught_up and latest.stats["records_in"] == 0
    assert sorted(dest.ids()) == list(range(50))


def test_resume_after_sigkill(services: Services, stream: Any, dest: Destination, unique: str, tmp_path: Path) -> None:
    """The worker SIGKILLs itself on its third batch, between the dead-letter commit and the
    primary commit (stream_etl/faults.py); a restart completes the stream exactly once."""
    total = 3000
    stream.append(orders(total))
    args = {**stream.worker_args(), **dest.worker_args(), "batch_records": "300"}
    log = tmp_path / "killed.log"
    killed_at(
        services,
        "secondaries_committed:3",
        app_id=unique,
        args=args,
        log=log,
        topology=TOPOLOGY,
        extra_env=stream.worker_env(),
        timeout=180,
    )
    committed_at_kill = dest.ids()
    assert 0 < len(committed_at_kill) < total

    run_worker(
        services, app_id=unique, args=args, log=tmp_path / "final.log", topology=TOPOLOGY, extra_env=stream.worker_env()
    )

    ids = dest.ids()
    assert len(ids) == len(set(ids)), f"{len(ids) - len(set(ids))} duplicates"
    assert sorted(ids) == list(range(total))


def test_empty_input(services: Services, stream: Any, dest: Destination, unique: str) -> None:
    summary = _run(services, stream, dest, unique)
    assert summary.caught_up
    assert summary.stats["records_in"] == 0
    assert dest.ids() == []


def test_bad_input_is_dead_lettered_and_counts_reconcile(
    services: Services, stream: Any, dest: Destination, unique: str
) -> None:
    total, bad_every = 60, 10
    stream.append(orders(total, bad_every=bad_every))
    bad = [i for i in range(total) if i % bad_every == bad_every - 1]

    summary = _run(services, stream, dest, unique)

    assert sorted(dest.ids()) == [i for i in range(total) if i not in bad]
    assert sorted(dest.dead_raw()) == sorted(malformed(i) for i in bad)
    stats = summary.stats
    assert stats["dead_lettered"] == len(bad)
    assert stats["records_in"] == total == stats["written"] + stats["filtered"] + stats["dead_lettered"]


def _rows(ids: list[int]) -> pa.Table:
    return pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "user": [f"u{i}" for i in ids],
            "amount": pa.array([float(i) for i in ids], pa.float64()),
            "country": ["DE"] * len(ids),
        }
    )


@pytest.mark.parametrize("case", SINKS, ids=[c.name for c in SINKS])
def test_commit_conflict_fences_a_stale_writer(services: Services, case: SinkCase, unique: str, tmp_path: Path) -> None:
    """A worker that lost its partition must not commit after the new owner did (per sink:
    the source plays no part in the fence)."""
    dest = case.make(services, unique, tmp_path)
    ctx = RunContext(app_id=unique, settings=services.settings())
    partition = SourcePartition("contract", 0)
    writers = []
    try:
        zombie = dest.sink().open(ctx)
        writers.append(zombie)
        zombie.commit(zombie.snapshot(), _rows([1]), {partition: 0})
        stale = zombie.snapshot()
        owner = dest.sink().open(ctx)
        writers.append(owner)
        owner.commit(owner.snapshot(), _rows([2]), {partition: 5})

        with pytest.raises(dest.fenced):
            zombie.commit(stale, _rows([3]), {partition: 4})

        assert sorted(dest.ids()) == [1, 2]
        assert owner.read_positions([partition]) == {partition: 5}
    finally:
        for writer in writers:
            writer.close()
        dest.cleanup()
