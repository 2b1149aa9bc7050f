"""Bookmarks commands: show, rewind and reset the positions a job's Delta table stores.

What a position means (:mod:`connectors.delta.bookmarks`): the offset of the last record
written; the source resumes at position + 1. Users think in Kafka's terms, so offsets given
and shown here are **next offsets** (the first record to read again), like a consumer
group's committed offset: ``--to-offset orders:0=500`` stores 499 and the next run reads
offset 500 onwards. Kafka is reached only to show the lag and to find offsets for a time.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from stream_etl.context import RunContext
from stream_etl.errors import ConfigurationError, StreamEtlError
from stream_etl.records import SourcePartition
from stream_etl.settings import Settings

if TYPE_CHECKING:
    from connectors.delta.bookmarks import Bookmark
    from connectors.kafka.source import KafkaReader


@dataclass(frozen=True, slots=True)
class Moved:
    """What a rewind or reset did: the new table version and each partition's next offset before and after."""

    version: int
    changes: dict[str, tuple[int | None, int | None]]

    def as_dict(self) -> dict[str, Any]:
        return {"version": self.version, "changes": {k: {"from": a, "to": b} for k, (a, b) in self.changes.items()}}


def show(
    uri: str, settings: Settings, *, app_id: str | None = None, history_limit: int = 10_000
) -> list[dict[str, Any]]:
    """Every stored position, with the Kafka end offset and lag when the broker answers."""
    from connectors.delta.bookmarks import read_bookmarks
    from connectors.delta.maintenance import open_table

    marks = read_bookmarks(open_table(uri, settings), app_id=app_id, history_limit=history_limit)
    ends: dict[tuple[str, int], int] = {}
    kafka = [k for m in marks if (k := m.kafka()) is not None]
    if kafka and settings.kafka_bootstrap_servers:
        try:
            with _kafka(settings, sorted({t for t, _ in kafka})) as reader:
                ends = {(sp.stream, int(sp.partition)): end for sp, end in reader.end_positions().items()}
        except StreamEtlError:  # the broker is optional here: no lag then
            ends = {}
    rows = []
    for mark in marks:
        where = mark.kafka()
        end = ends.get(where, 0 if ends else None) if where is not None else None
        rows.append(
            {
                "app_id": mark.app_id,
                "partition": mark.partition,
                "topic": where[0] if where else None,
                "kafka_partition": where[1] if where else None,
                "last_written": mark.position,
                "next_offset": mark.next_position,
                "cursor": mark.cursor,
                "stored_by": mark.how,
                "version": mark.version,
                "committed_at": mark.committed_at.isoformat() if mark.committed_at else None,
                "end_offset": end,
                "lag": None if end is None or mark.next_position is None else max(end - mark.next_position, 0),
            }
        )
    return rows


def rewind(
    uri: str,
    settings: Settings,
    app_id: str,
    *,
    to_offsets: Mapping[str, int] | None = None,
    to_timestamp: datetime | None = None,
    by: int | None = None,
) -> Moved:
    """Move ``app_id``'s positions: to next offsets (``{"topic:partition": offset}``), to the first
    record at or after a time (Kafka offsets_for_times; the end when there is none), or back by
    ``by`` records (not below offset 0). Exactly one way must be given."""
    from connectors.delta.bookmarks import move_bookmarks, read_bookmarks
    from connectors.delta.maintenance import open_table

    if sum(x is not None for x in (to_offsets, to_timestamp, by)) != 1:
        msg = "give exactly one of --to-offset, --to-timestamp or --by"
        raise ConfigurationError(msg)
    table = open_table(uri, settings)
    current = {m.partition: m for m in read_bookmarks(table, app_id=app_id)}
    wanted: dict[str, int] = {}
    if to_offsets is not None:
        wanted = {_key(spec): offset for spec, offset in to_offsets.items()}
    else:
        marks = [m for m in current.values() if m.kafka() is not None and m.position is not None]
        if not marks:
            msg = f"app id {app_id!r} has no stored Kafka positions in {uri} to rewind; give --to-offset"
            raise ConfigurationError(msg)
        if by is not None:
            wanted = {m.partition: max((m.next_position or 0) - by, 0) for m in marks}
        else:
            assert to_timestamp is not None  # noqa: S101 - one of the three, checked above
            wanted = _offsets_at(settings, marks, to_timestamp)
    before = {key: m.next_position for key, m in current.items()}
    version = move_bookmarks(table, app_id, {key: offset - 1 for key, offset in wanted.items()}, how="rewind")
    return Moved(version, {key: (before.get(key), offset) for key, offset in wanted.items()})


def reset(uri: str, settings: Settings, app_id: str, *, partitions: Sequence[str] = ()) -> Moved:
    """Forget ``app_id``'s positions (all, or ``topic:partition`` ones): the next run starts
    them per the source's ``start_from``, as if the job had never run."""
    from connectors.delta.bookmarks import move_bookmarks, read_bookmarks
    from connectors.delta.maintenance import open_table

    table = open_table(uri, settings)
    current = {m.partition: m.next_position for m in read_bookmarks(table, app_id=app_id)}
    keys = [_key(p) for p in partitions] or [k for k, v in current.items() if v is not None]
    version = move_bookmarks(table, app_id, dict.fromkeys(keys), how="reset")
    return Moved(version, {key: (current.get(key), None) for key in keys})


def _key(spec: str) -> str:
    """``topic:partition`` -> the stored partition key ``topic-partition``."""
    topic, _, number = spec.rpartition(":")
    if not topic or not number.isdigit():
        msg = f"a partition is TOPIC:PARTITION, e.g. orders:0; got {spec!r}"
        raise ConfigurationError(msg)
    return str(SourcePartition(topic, int(number)))


def _offsets_at(settings: Settings, marks: Sequence[Bookmark], when: datetime) -> dict[str, int]:
    if when.tzinfo is None:
        msg = f"give the time with its zone, e.g. {when.isoformat()}Z or +00:00"
        raise ConfigurationError(msg)
    where = {m.partition: m.kafka() for m in marks}
    partitions = {key: SourcePartition(t, p) for key, (t, p) in where.items()}  # type: ignore[misc]
    with _kafka(settings, sorted({sp.stream for sp in partitions.values()})) as reader:
        found = reader.offsets_at(list(partitions.values()), when)
        ends = reader.end_positions() if None in found.values() else {}  # no record that late: the end
    return {key: offset if (offset := found[sp]) is not None else ends.get(sp, 0) for key, sp in partitions.items()}


@contextmanager
def _kafka(settings: Settings, topics: list[str]) -> Iterator[KafkaReader]:
    """A Kafka reader of ``topics`` that joins no group and commits nothing."""
    from connectors.kafka.source import KafkaReader, KafkaSource
    from stream_etl.preview import NoStoredPositions

    if not settings.kafka_bootstrap_servers:
        msg = "no Kafka to ask for offsets: set STREAM_ETL_KAFKA_BOOTSTRAP_SERVERS (or run `stream-etl dev up`)"
        raise ConfigurationError(msg)
    source = KafkaSource(topics, client="confluent", connect_timeout_s=5.0).for_preview()
    reader = source.open(RunContext(app_id="stream-etl-bookmarks", settings=settings), NoStoredPositions())
    assert isinstance(reader, KafkaReader)  # noqa: S101 - client="confluent"
    try:
        yield reader
    finally:
        reader.close()
