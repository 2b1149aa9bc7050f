"""Delta Lake sink on delta-rs: rows and source positions in one atomic commit.

Each commit appends the batch's data files and, for every source partition in
the batch, a ``txn`` action with app id ``<job app id>-<stream>-<partition>`` and
version = the last position written (kafka-delta-ingest's design). Commits are
based on the snapshot the positions were read from, so delta-rs refuses a commit
when another writer committed the same app id in between: that is the fence
against a worker that lost its partitions in a rebalance.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc

from connectors.delta.config import diagnose_s3, is_s3, storage_options
from connectors.delta.writable import writable
from stream_etl.catalog import TableCommit, adds_columns, tell_catalog
from stream_etl.context import RunContext
from stream_etl.errors import (
    CommitContention,
    ConfigurationError,
    PositionConflict,
    RowsRejected,
    SinkRejected,
    SinkUnavailable,
)
from stream_etl.records import LINEAGE, SourcePartition
from stream_etl.schema_policy import SchemaMode, align
from stream_etl.sinks import CommitInfo, Sink, SinkWriter, Staged
from stream_etl.state import FileStateStore

try:
    from deltalake import CommitProperties, DeltaTable, Transaction, WriterProperties, write_deltalake
    from deltalake import Schema as DeltaSchema
    from deltalake.exceptions import CommitFailedError, DeltaError, SchemaMismatchError, TableNotFoundError
    from deltalake.transaction import AddAction, create_table_with_add_actions
except ImportError as exc:  # pragma: no cover - depends on the install
    msg = "the Delta connector needs deltalake: pip install 'stream-etl[delta]'"
    raise ImportError(msg) from exc

log = logging.getLogger(__name__)


#: Recorded in every commit's metadata, to tell which worker process wrote it.
WORKER = f"{socket.gethostname()}:{os.getpid()}"

#: The txn version `stream-etl bookmarks reset` stores: the partition has no stored position
#: (Delta cannot delete a txn action). Any version below -1 reads as none; -1 is a real
#: position (nothing read yet: resume at offset 0).
FORGOTTEN = -2

#: delta-rs raises object store failures met while writing (S3 unreachable, a reset
#: connection) as a plain DeltaError carrying object_store's message; these mark them.
_STORAGE_FAILURE = re.compile(
    r"Generic (S3|GCS|MicrosoftAzure|LocalFileSystem|HTTP) error|error sending request|Object Store error"
)


#: Where :meth:`DeltaWriter.stage` writes data files ahead of their commit, under the table.
#: Not ``_``-prefixed: VACUUM removes what a crash or a dropped batch leaves there.
STAGED_DIR = "stream-etl-staged"

#: Table features a staged commit would bypass (they need delta-rs's own write path).
_WRITE_PATH_FEATURES = ("delta.generationExpression", "delta.invariants", "delta.identity")


def _scratch_storage(location: str, options: dict[str, str]) -> Any:
    """The storage handler of a staged scratch table (imported here: it loads pyarrow.fs)."""
    from deltalake.fs import DeltaStorageHandler

    return DeltaStorageHandler(location, options or None)


def _storage_failure(exc: BaseException) -> bool:
    return isinstance(exc, OSError) or bool(_STORAGE_FAILURE.search(str(exc)))


@dataclass(frozen=True, slots=True)
class _StagedFiles:
    """Data files written by :meth:`DeltaWriter.stage`: a one-commit scratch table under
    :data:`STAGED_DIR` whose add actions (paths made relative to the table) are committed."""

    location: str
    actions: list[AddAction]
    schema_json: str


class DeltaSink(Sink):
    """Append to a Delta table at ``uri`` (``s3://bucket/path`` or a local path).

    The table is created from the first batch when missing, partitioned by
    ``partition_by``. ``schema_mode="merge"`` adds new columns as they appear;
    ``"strict"`` dead-letters rows that carry values for unknown columns. Values
    are cast losslessly to the table's types; a value that does not fit is
    dead-lettered rather than truncated. ``rescue_column="_rescued"`` keeps such
    rows instead, with the offending fields as a JSON string in that column.
    The full rules: :mod:`stream_etl.schema_policy` and docs/FORMATS.md.

    ``max_commit_retries`` bounds delta-rs's own conflict resolution per commit (it
    rebases an append over other writers' commits; default 15). When other jobs keep
    winning past it the commit raises :class:`~stream_etl.errors.CommitContention` and
    the run loop retries the batch with backoff, within the sink retry budget.
    """

    #: Opening loads the table's log; snapshot and conform only read it.
    opens_read_only = True

    def __init__(
        self,
        uri: str,
        *,
        partition_by: Sequence[str] = (),
        target_file_size: int | None = None,
        schema_mode: SchemaMode = "merge",
        rescue_column: str | None = None,
        compression: Literal["SNAPPY", "ZSTD", "LZ4", "GZIP", "UNCOMPRESSED"] | None = None,
        storage_options: Mapping[str, str] | None = None,
        name: str | None = None,
        max_commit_retries: int | None = None,
    ) -> None:
        if not uri:
            msg = "DeltaSink needs a table URI such as s3://lake/orders or ./tables/orders"
            raise ConfigurationError(msg)
        if schema_mode not in ("merge", "strict"):
            msg = f"schema_mode must be 'merge' or 'strict', got {schema_mode!r}"
            raise ConfigurationError(msg)
        self.uri = uri.rstrip("/")
        self.partition_by = list(partition_by)
        self.target_file_size = target_file_size
        self.schema_mode = schema_mode
        if rescue_column is not None and (not rescue_column or rescue_column in self.partition_by):
            msg = f"rescue_column must be a column name that is not a partition column, got {rescue_column!r}"
            raise ConfigurationError(msg)
        self.rescue_column = rescue_column
        self.compression = compression
        self.storage_options = dict(storage_options or {})
        self.name = name
        if max_commit_retries is not None and max_commit_retries < 0:
            msg = f"max_commit_retries must be >= 0, got {max_commit_retries}"
            raise ConfigurationError(msg)
        self.max_commit_retries = max_commit_retries

    def describe(self) -> str:
        parts = f" partitioned by {', '.join(self.partition_by)}" if self.partition_by else ""
        return f"delta {self.uri}{parts}"

    def default_name(self) -> str:
        return self.name or self.uri.rsplit("/", 1)[-1] or "delta"

    def default_dead_letters(self) -> DeltaSink:
        return DeltaSink(
            f"{self.uri}_dead_letters",
            storage_options=self.storage_options,
            name=f"{self.default_name()}_dead_letters",
        )

    def open(self, ctx: RunContext) -> DeltaWriter:
        return DeltaWriter(self, ctx)

    def default_state_store(self, ctx: RunContext) -> FileStateStore:
        return FileStateStore(f"{self.uri}_state", ctx.app_id, ctx.settings)


class DeltaSnapshot:
    """A table version: its schema and stored positions (looked up lazily, cached)."""

    def __init__(self, table: DeltaTable | None, app_id: str) -> None:
        self.table = table
        self.app_id = app_id
        self.version = table.version() if table is not None else None
        self.schema = pa.schema(table.schema().to_arrow()) if table is not None else None
        self._positions: dict[SourcePartition, int | None] = {}

    def position(self, partition: SourcePartition) -> int | None:
        if self.table is None:
            return None
        if partition not in self._positions:
            try:
                stored = self.table.transaction_version(txn_app_id(self.app_id, partition))
            except (OSError, DeltaError) as exc:
                msg = f"reading the stored position of {partition} failed: {exc}"
                raise SinkUnavailable(msg, table_uri=self.table.table_uri) from exc
            self._positions[partition] = None if stored is None or stored < -1 else stored
        return self._positions[partition]


def _below(stored: int | None, committed: int) -> bool:
    return stored is None or stored < committed


def txn_app_id(app_id: str, partition: SourcePartition) -> str:
    """The Delta txn app id holding ``partition``'s position for job ``app_id``."""
    return f"{app_id}-{partition.stream}-{partition.partition}"


class DeltaWriter(SinkWriter):
    stores_cursors = True

    def __init__(self, sink: DeltaSink, ctx: RunContext) -> None:
        self.sink = sink
        self.app_id = ctx.app_id
        self.catalog = ctx.catalog
        self.options = storage_options(sink.uri, ctx.settings, sink.storage_options)
        self._table: DeltaTable | None = self._load()
        #: What this writer last committed per partition, to notice a rewind (see :meth:`_rewound`).
        self._committed: dict[SourcePartition, int] = {}
        if self._table is not None and sink.partition_by:
            existing = self._table.metadata().partition_columns
            if list(existing) != sink.partition_by:
                msg = (
                    f"table {sink.uri} is partitioned by {list(existing)}, the sink asks for "
                    f"{sink.partition_by}; change partition_by or write to a new table"
                )
                raise ConfigurationError(msg)
        # WriterProperties() without a codec would write uncompressed files: keep delta-rs's default.
        self._write_options: dict[str, Any] = {}
        if sink.compression:
            self._write_options["writer_properties"] = WriterProperties(compression=sink.compression)

    def _load(self) -> DeltaTable | None:
        try:
            return DeltaTable(self.sink.uri, storage_options=self.options or None)
        except TableNotFoundError:
            return None
        except OSError as exc:
            problem, reason = diagnose_s3(self.sink.uri, self.options) if is_s3(self.sink.uri) else ("other", "")
            if problem == "no_bucket":
                raise ConfigurationError(reason) from exc
            msg = f"{reason or 'reading the table failed'}: {exc}"
            raise SinkUnavailable(msg, table_uri=self.sink.uri) from exc

    def read_positions(self, partitions: Sequence[SourcePartition]) -> dict[SourcePartition, int]:
        snapshot = DeltaSnapshot(self._load(), self.app_id)
        found = {sp: snapshot.position(sp) for sp in partitions}
        return {sp: v for sp, v in found.items() if v is not None}

    def read_cursors(self, partitions: Sequence[SourcePartition]) -> dict[SourcePartition, str]:
        """Cursors live in commit metadata: find, newest first, the commit that stored each
        partition's current position (its txn version) and take the cursor stored with it."""
        table = self._load()
        if table is None:
            return {}
        snapshot = DeltaSnapshot(table, self.app_id)
        wanted = {str(sp): (sp, v) for sp in partitions if (v := snapshot.position(sp)) is not None}
        found: dict[SourcePartition, str] = {}
        limit = 100
        while wanted:
            history = table.history(limit=limit)
            for commit in history:
                if commit.get("stream_etl.app_id") != self.app_id or "stream_etl.cursors" not in commit:
                    continue
                positions = json.loads(str(commit.get("stream_etl.positions", "{}")))
                cursors = json.loads(str(commit["stream_etl.cursors"]))
                for key in [k for k in wanted if k in cursors and positions.get(k) == wanted[k][1]]:
                    found[wanted.pop(key)[0]] = str(cursors[key])
            if len(history) < limit:
                break
            limit *= 10
        return found

    def snapshot(self) -> DeltaSnapshot:
        try:
            if self._table is None:
                self._table = self._load()
            else:
                self._table.update_incremental()
        except (OSError, DeltaError) as exc:
            if not _storage_failure(exc):
                raise
            msg = f"reading {self.sink.uri} failed: {exc}"
            raise SinkUnavailable(msg, table_uri=self.sink.uri) from exc
        return DeltaSnapshot(self._table, self.app_id)

    def conform(self, table: pa.Table, snapshot: Any) -> pa.Table:
        """Fit the rows to the table under the sink's schema policy (see :mod:`stream_etl.schema_policy`).

        Rows that cannot be fitted raise :class:`RowsRejected` naming just them (with the rest kept),
        so they are dead-lettered with step ``sink:<name>`` and the others are committed."""
        lineage = table[LINEAGE]
        data = writable(table.drop_columns([LINEAGE]), snapshot.schema)
        rescue = self.sink.rescue_column
        if snapshot.schema is None:
            missing = [c for c in self.sink.partition_by if c not in data.column_names]
            if missing:
                msg = f"partition column(s) {missing} are missing from the rows for {self.sink.uri}"
                raise RowsRejected(msg)
            data = data.select([c for c in data.column_names if not pa.types.is_null(data[c].type)])
            if rescue is not None and rescue not in data.column_names:
                data = data.append_column(rescue, pa.nulls(data.num_rows, pa.string()))
            return data.append_column(LINEAGE, lineage)
        aligned = align(data, snapshot.schema, mode=self.sink.schema_mode, rescue_column=rescue, where=self.sink.uri)
        out = aligned.table.append_column(LINEAGE, lineage)
        mask = aligned.reject_mask()
        if mask is None:
            return out
        rows = lineage.combine_chunks()
        rejected: dict[int, str] = {}
        for failing, reason in aligned.rejected:  # rejected rows only: a loop per failed row is fine
            for row in rows.filter(failing).to_pylist():
                rejected.setdefault(row, reason)
        kept = out.filter(pc.invert(mask))
        msg = f"{len(rejected)} row(s) do not fit table {self.sink.uri}"
        raise RowsRejected(msg, rejected=rejected, kept=kept if kept.num_rows else None)

    def commit(
        self,
        snapshot: Any,
        table: pa.Table | None,
        positions: dict[SourcePartition, int],
        *,
        cursors: Mapping[SourcePartition, str] | None = None,
    ) -> CommitInfo:
        self._rewound(snapshot, positions)
        if table is None:
            if snapshot.schema is None:
                log.info("no rows and no table %s yet: positions are not stored", self.sink.uri)
                return CommitInfo(rows=0)
            table = snapshot.schema.empty_table()
        properties = self._properties(positions, cursors)
        creating = snapshot.table is None
        target: str | DeltaTable = self.sink.uri if creating else snapshot.table
        try:
            write_deltalake(
                target,
                table,
                mode="append",
                partition_by=(self.sink.partition_by or None) if creating else None,
                schema_mode="merge" if not creating and self._merges(snapshot) else None,
                storage_options=(self.options or None) if creating else None,
                target_file_size=self.sink.target_file_size,
                **self._write_options,
                commit_properties=properties,
            )
        except CommitFailedError as exc:
            raise self._conflict(exc, snapshot, positions) from exc
        except SchemaMismatchError as exc:
            msg = f"table {self.sink.uri} refused the batch's schema: {exc}"
            raise SinkRejected(msg, table_uri=self.sink.uri, table_version=snapshot.version) from exc
        except (OSError, DeltaError) as exc:
            raise self._write_failed(exc, creating=creating) from exc
        return self._committed_now(snapshot, positions, table.schema.names, table.num_rows, creating=creating)

    def _properties(
        self, positions: Mapping[SourcePartition, int], cursors: Mapping[SourcePartition, str] | None
    ) -> CommitProperties:
        """The txn actions storing ``positions`` and the commit's metadata."""
        now_ms = int(time.time() * 1000)
        return CommitProperties(
            max_commit_retries=self.sink.max_commit_retries,
            app_transactions=[Transaction(txn_app_id(self.app_id, sp), v, now_ms) for sp, v in positions.items()],
            custom_metadata={
                "stream_etl.app_id": self.app_id,
                "stream_etl.worker": WORKER,
                "stream_etl.positions": json.dumps({str(sp): v for sp, v in positions.items()}),
                **({"stream_etl.cursors": json.dumps({str(sp): c for sp, c in cursors.items()})} if cursors else {}),
            },
        )

    def _write_failed(
        self, exc: OSError | DeltaError, *, creating: bool
    ) -> SinkUnavailable | PositionConflict | SinkRejected:
        msg = f"writing {self.sink.uri} failed: {exc}"
        if _storage_failure(exc):  # retried on a fresh snapshot, which shows a commit that landed anyway
            return SinkUnavailable(msg, table_uri=self.sink.uri)
        if creating:  # another worker created the table first
            return PositionConflict(msg, table_uri=self.sink.uri)
        return SinkRejected(msg, table_uri=self.sink.uri)

    def _committed_now(
        self,
        snapshot: DeltaSnapshot,
        positions: Mapping[SourcePartition, int],
        columns: list[str],
        rows: int,
        *,
        creating: bool,
    ) -> CommitInfo:
        self._committed.update(positions)
        if creating:
            self._table = self._load()
        version = self._table.version() if self._table is not None else None
        before = snapshot.schema.names if snapshot.schema is not None else None
        if self.catalog is not None and (creating or adds_columns(columns, before)):
            tell_catalog(self.catalog, self.sink.uri, lambda: self._table_commit(created=creating))
        return CommitInfo(rows=rows, version=version)

    # Staged commits (see SinkWriter.stager) ---------------------------------------------

    def stager(self, snapshot: Any, table: pa.Table) -> Callable[[], Staged] | None:
        """Write ``table``'s data files ahead of their commit, as delta-rs would.

        delta-rs has no "write files only" call, so the files are written as a scratch table
        of their own under :data:`STAGED_DIR` (one commit: its log carries the add actions
        with the statistics delta-rs computed); :meth:`commit_staged` commits those actions to
        this table with the positions. Readers of this table never see the scratch table.
        Only plain appends are staged: the same columns and types as the table (no schema
        change) and none of the features delta-rs's write path enforces. The checks read the
        snapshot here; the returned function only writes (any thread).
        """
        if not self._stageable(snapshot, table):
            return None
        partition_by = self.sink.partition_by if snapshot.table is None else snapshot.table.metadata().partition_columns
        return lambda: self._stage(table, list(partition_by))

    def _stage(self, table: pa.Table, partition_by: list[str]) -> Staged:
        where = f"{STAGED_DIR}/{uuid.uuid4().hex}"
        location = f"{self.sink.uri}/{where}"
        try:
            write_deltalake(
                location,
                table,
                mode="error",
                partition_by=partition_by or None,
                storage_options=self.options or None,
                target_file_size=self.sink.target_file_size,
                **self._write_options,
            )
            scratch_log = _scratch_storage(location, self.options).open_input_file(f"_delta_log/{0:020d}.json")
            entries = [json.loads(line) for line in scratch_log.read().splitlines() if line.strip()]
        except (OSError, DeltaError) as exc:
            msg = f"staging {table.num_rows} rows for {self.sink.uri} failed: {exc}"
            raise SinkUnavailable(msg, table_uri=self.sink.uri) from exc
        actions = [
            AddAction(
                path=f"{where}/{add['path']}",
                size=add["size"],
                partition_values=add.get("partitionValues") or {},
                modification_time=add["modificationTime"],
                data_change=True,
                stats=add.get("stats") or "",
            )
            for entry in entries
            if (add := entry.get("add"))
        ]
        schema_json = next(entry["metaData"]["schemaString"] for entry in entries if "metaData" in entry)
        return Staged(rows=table.num_rows, schema=table.schema, handle=_StagedFiles(location, actions, schema_json))

    def _stageable(self, snapshot: DeltaSnapshot, table: pa.Table) -> bool:
        if snapshot.table is None or snapshot.schema is None:
            return all(column in table.schema.names for column in self.sink.partition_by)
        if [(f.name, f.type) for f in table.schema] != [(f.name, f.type) for f in snapshot.schema]:
            return False
        configuration = snapshot.table.metadata().configuration
        if any(key.startswith("delta.constraints.") for key in configuration):
            return False
        if configuration.get("delta.columnMapping.mode") not in (None, "none"):
            return False
        schema_json = snapshot.table.schema().to_json()
        return not any(feature in schema_json for feature in _WRITE_PATH_FEATURES)

    def commit_staged(
        self, snapshot: Any, staged: Sequence[Staged], positions: dict[SourcePartition, int]
    ) -> CommitInfo:
        self._rewound(snapshot, positions)
        files: list[_StagedFiles] = [s.handle for s in staged]
        actions = [action for f in files for action in f.actions]
        properties = self._properties(positions, None)
        creating = snapshot.table is None
        try:
            if creating:
                create_table_with_add_actions(
                    self.sink.uri,
                    DeltaSchema.from_json(files[0].schema_json),
                    actions,
                    mode="error",
                    partition_by=self.sink.partition_by or None,
                    storage_options=self.options or None,
                    commit_properties=properties,
                )
            else:
                snapshot.table.create_write_transaction(
                    actions,
                    mode="append",
                    schema=snapshot.table.schema(),
                    partition_by=list(snapshot.table.metadata().partition_columns) or None,
                    commit_properties=properties,
                )
        except CommitFailedError as exc:
            raise self._conflict(exc, snapshot, positions) from exc
        except (OSError, DeltaError) as exc:
            raise self._write_failed(exc, creating=creating) from exc
        for f in files:  # the scratch logs: the table's log now holds their files
            self._forget_scratch(f.location)
        rows = sum(s.rows for s in staged)
        return self._committed_now(snapshot, positions, staged[0].schema.names, rows, creating=creating)

    def _forget_scratch(self, location: str) -> None:
        try:
            _scratch_storage(location, self.options).delete_file(f"_delta_log/{0:020d}.json")
        except (OSError, DeltaError) as exc:  # VACUUM removes it later
            log.debug("removing the scratch log of %s failed: %s", location, exc)

    def _rewound(self, snapshot: DeltaSnapshot, positions: Mapping[SourcePartition, int]) -> None:
        """Refuse to commit over a rewind: when a partition's stored position is below what this
        writer committed for it (only `stream-etl bookmarks rewind|reset` moves positions back),
        the batch in hand was read from the old position. PositionConflict makes the run loop
        drop it, re-read the positions and re-seek, so the rewind takes effect."""
        back = [sp for sp in positions if sp in self._committed and _below(snapshot.position(sp), self._committed[sp])]
        if back:
            for sp in back:
                del self._committed[sp]
            msg = f"the stored positions of {[str(p) for p in back]} in {self.sink.uri} were moved back (a rewind)"
            raise PositionConflict(msg, table_uri=self.sink.uri, table_version=snapshot.version, positions=positions)

    def _conflict(
        self, exc: CommitFailedError, snapshot: DeltaSnapshot, positions: dict[SourcePartition, int]
    ) -> PositionConflict | CommitContention | SinkUnavailable:
        """Tell a fence (another writer stored positions for one of our partitions since
        ``snapshot``: re-seek) from contention (other jobs' commits outran delta-rs's retries)."""
        try:
            fresh = DeltaSnapshot(self._load(), self.app_id)
        except (OSError, SinkUnavailable, DeltaError) as again:
            msg = f"commit to {self.sink.uri} failed ({exc}) and re-reading the table failed too: {again}"
            return SinkUnavailable(msg, table_uri=self.sink.uri)
        moved = [sp for sp in positions if fresh.position(sp) != snapshot.position(sp)]
        for sp in moved:  # re-read on the re-seek; a rewind that won this race is no longer news
            self._committed.pop(sp, None)
        if moved or snapshot.table is None:
            msg = f"commit to {self.sink.uri} conflicted: another writer stored positions for {[str(p) for p in moved]}"
            return PositionConflict(msg, table_uri=self.sink.uri, table_version=snapshot.version, positions=positions)
        retries = self.sink.max_commit_retries
        msg = (
            f"other writers kept committing to {self.sink.uri} (conflict retries "
            f"{'default' if retries is None else retries} exhausted: {exc}); raise DeltaSink(max_commit_retries=...)"
        )
        return CommitContention(msg, table_uri=self.sink.uri, table_version=snapshot.version, positions=positions)

    def _table_commit(self, *, created: bool) -> TableCommit | None:
        """The table as committed, for the catalog (see :func:`stream_etl.catalog.tell_catalog`)."""
        if self._table is None:
            return None
        if not created:
            self._table.update_incremental()
        return TableCommit(
            location=self.sink.uri,
            format="delta",
            schema=pa.schema(self._table.schema().to_arrow()),
            partition_keys=tuple(self._table.metadata().partition_columns),
            table_version=self._table.version(),
            created=created,
            app_id=self.app_id,
        )

    def _merges(self, snapshot: DeltaSnapshot) -> bool:
        """Whether this commit may add columns: under merge, or to add the rescue column once."""
        rescue = self.sink.rescue_column
        added_rescue = rescue is not None and snapshot.schema is not None and rescue not in snapshot.schema.names
        return self.sink.schema_mode == "merge" or added_rescue

    def summary(self) -> dict[str, Any]:
        table = self._load()
        if table is None:
            return {"location": self.sink.uri, "version": None, "rows": 0}
        actions = table.get_add_actions(flatten=True)
        rows = pa.table(actions)["num_records"]
        return {"location": self.sink.uri, "version": table.version(), "rows": int(pc.sum(rows).as_py() or 0)}
