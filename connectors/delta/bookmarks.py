"""Bookmarks: the source positions a Delta table's commit log stores, read and moved by hand.

A sink commit stores, per source partition, a ``txn`` action with app id
``<job app id>-<stream>-<partition>`` and version = the position of the last record
written (a Kafka offset; for Kinesis a per-shard counter, with the shard's sequence number
in the commit's ``stream_etl.cursors``). The source resumes at stored position + 1.

- :func:`read_bookmarks` lists them: the authoritative value is the ``txn`` action; the
  commit that stored it (version, time, whether a sink or a rewind wrote it) is found in
  the commit history (``stream_etl.positions`` metadata), newest first.
- :func:`move_bookmarks` writes a commit with no data and the new ``txn`` actions. It is
  based on the snapshot its caller read, so a sink commit of the same app id landing in
  between makes it fail (delta-rs refuses a commit whose txn app id moved since its
  snapshot) rather than be silently overwritten; the other way round, a sink commit based
  on a snapshot older than the rewind fails and the worker re-seeks, and a worker that
  committed further itself refuses to commit over a moved-back position
  (:meth:`connectors.delta.sink.DeltaWriter.commit`). Stop the job anyway: a worker between
  two commits reads on from where it was until its next commit notices the rewind.
- A reset stores :data:`~connectors.delta.sink.FORGOTTEN` (a ``txn`` action cannot be
  deleted): the sink reads it as "no stored position", so the source starts that partition
  per its ``start_from`` (earliest by default), as for a job that never ran.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import pyarrow as pa

from connectors.delta.sink import FORGOTTEN, WORKER
from stream_etl.errors import ConfigurationError, PositionConflict, SinkUnavailable

try:
    from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake
    from deltalake.exceptions import CommitFailedError, DeltaError
except ImportError as exc:  # pragma: no cover - depends on the install
    msg = "bookmarks need deltalake: pip install 'stream-etl[delta]'"
    raise ImportError(msg) from exc

How = Literal["sink", "rewind", "reset", "unknown"]

#: Commit metadata key naming what moved bookmarks by hand: ``rewind`` or ``reset``.
BOOKMARKS_KEY = "stream_etl.bookmarks"


@dataclass(frozen=True, slots=True)
class Bookmark:
    """One partition's stored position for one job (app id)."""

    app_id: str
    partition: str  # as stored: "<stream>-<partition>", e.g. "orders-3"
    position: int | None  # the last position written; None after a reset
    version: int | None  # the table version whose commit stored it (None: not in the history read)
    committed_at: datetime | None
    how: How
    cursor: str | None = None  # Kinesis: "<position>:<sequence number>"

    @property
    def next_position(self) -> int | None:
        """Where the source resumes (None: at its start setting)."""
        return None if self.position is None else self.position + 1

    def kafka(self) -> tuple[str, int] | None:
        """(topic, partition) for a Kafka partition; None for a Kinesis shard (it has a cursor)."""
        topic, _, number = self.partition.rpartition("-")
        if self.cursor is not None or not topic or not number.isdigit() or topic.endswith("-shardId"):
            return None
        return topic, int(number)


def store_txns(table: DeltaTable, versions: Mapping[str, int], metadata: Mapping[str, str]) -> None:
    """One commit with no data: ``versions`` as txn actions (app id -> version) and ``metadata``,
    based on ``table``'s snapshot (CommitFailedError when one of those app ids moved since)."""
    now_ms = int(time.time() * 1000)
    properties = CommitProperties(
        app_transactions=[Transaction(app, version, now_ms) for app, version in versions.items()],
        custom_metadata={"stream_etl.worker": f"{metadata.get(BOOKMARKS_KEY, 'maintenance')} {WORKER}", **metadata},
    )
    try:
        write_deltalake(
            table, pa.schema(table.schema().to_arrow()).empty_table(), mode="append", commit_properties=properties
        )
    except CommitFailedError:
        raise
    except (OSError, DeltaError) as exc:
        msg = f"committing to {table.table_uri} failed: {exc}"
        raise SinkUnavailable(msg, table_uri=table.table_uri, table_version=table.version()) from exc


def read_bookmarks(table: DeltaTable, *, app_id: str | None = None, history_limit: int = 10_000) -> list[Bookmark]:
    """Every stored position of ``app_id`` (of every job when None) found in the last
    ``history_limit`` commits, sorted by app id and partition."""
    found: dict[tuple[str, str], Bookmark] = {}
    try:
        history = table.history(history_limit)  # newest first
        for commit in history:
            owner = commit.get("stream_etl.app_id")
            if owner is None or (app_id is not None and owner != app_id):
                continue
            positions = json.loads(str(commit.get("stream_etl.positions", "{}")))
            cursors = json.loads(str(commit.get("stream_etl.cursors", "{}")))
            for key, value in positions.items():
                if (owner, key) in found:
                    continue  # a newer commit stored this one
                current = table.transaction_version(f"{owner}-{key}")
                same = current == value
                found[(owner, key)] = Bookmark(
                    app_id=str(owner),
                    partition=key,
                    position=None if current is None or current < -1 else current,
                    version=int(commit["version"]) if same else None,
                    committed_at=datetime.fromtimestamp(int(commit["timestamp"]) / 1000, UTC) if same else None,
                    how=str(commit.get(BOOKMARKS_KEY, "sink")) if same else "unknown",  # type: ignore[arg-type]
                    cursor=cursors.get(key),
                )
    except (OSError, DeltaError) as exc:
        msg = f"reading the commit log of {table.table_uri} failed: {exc}"
        raise SinkUnavailable(msg, table_uri=table.table_uri) from exc
    return sorted(found.values(), key=lambda b: (b.app_id, b.partition))


def move_bookmarks(
    table: DeltaTable, app_id: str, positions: Mapping[str, int | None], *, how: Literal["rewind", "reset"]
) -> int:
    """Store ``positions`` (partition key -> last position written; None forgets it) in one
    commit with no data, based on ``table``'s snapshot; returns the new table version.

    Raises :class:`PositionConflict` when a sink of ``app_id`` committed since that snapshot."""
    if not positions:
        msg = f"no positions to move for app id {app_id!r}; `stream-etl bookmarks show` lists them"
        raise ConfigurationError(msg)
    stored = {key: FORGOTTEN if value is None else value for key, value in positions.items()}
    if any(value < -1 for value in positions.values() if value is not None):
        msg = f"a position must be >= -1 (-1: read the partition from offset 0), got {positions}"
        raise ConfigurationError(msg)
    snapshot = table.version()
    metadata = {"stream_etl.app_id": app_id, "stream_etl.positions": json.dumps(stored), BOOKMARKS_KEY: how}
    try:
        store_txns(table, {f"{app_id}-{key}": value for key, value in stored.items()}, metadata)
    except CommitFailedError as exc:
        msg = (
            f"a worker of app id {app_id!r} committed to {table.table_uri} after version {snapshot} was read, "
            f"so the {how} was not written; stop the job (stream-etl runs stop RUN) and run it again"
        )
        raise PositionConflict(msg, table_uri=table.table_uri, table_version=snapshot) from exc
    table.update_incremental()
    return table.version()
