"""Postgres sink on psycopg 3: rows and source positions in one database transaction.

Each commit, in one transaction:

1. locks this job's rows of the positions table (``SELECT ... FOR UPDATE``) and
   compares them with the snapshot the batch was planned on; a difference means
   another writer committed since (a zombie after a rebalance): ``PositionConflict``;
2. creates the table from the Arrow schema, or adds the batch's new columns;
3. bulk-loads the rows with ``COPY ... FROM STDIN (FORMAT csv)``, the CSV written by
   Arrow's C++ writer (no Python per row). Upsert copies into a temporary staging
   table, then ``DELETE ... USING`` the staged keys and ``INSERT ... SELECT`` (SQL that
   Redshift runs too; a batch holding one key several times keeps its last row);
4. writes the positions (and cursors) of the batch's partitions.

So the rows and the positions are committed together or not at all. Two writers that
first store a position for the same partition race on the positions table's primary
key: the loser gets a unique violation, reported as ``PositionConflict`` as well.
"""

from __future__ import annotations

import io
import logging
import os
import socket
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from connectors.postgres.config import ARROW_FOR_SQL, POSITIONS_TABLE, is_binary, is_nested, sql_type
from stream_etl.context import RunContext
from stream_etl.errors import ConfigurationError, PositionConflict, RowsRejected, SinkRejected, SinkUnavailable
from stream_etl.records import LINEAGE, SourcePartition
from stream_etl.sinks import CommitInfo, Sink, SinkWriter

try:
    import psycopg
    from psycopg import errors as pgerrors
    from psycopg import sql
except ImportError as exc:  # pragma: no cover - depends on the install
    msg = "the Postgres connector needs psycopg: pip install 'stream-etl[postgres]'"
    raise ImportError(msg) from exc

log = logging.getLogger(__name__)

Mode = Literal["append", "upsert"]
SchemaMode = Literal["merge", "strict"]

WORKER = f"{socket.gethostname()}:{os.getpid()}"

_CONFLICTS = (
    pgerrors.UniqueViolation,
    pgerrors.SerializationFailure,
    pgerrors.DeadlockDetected,
    pgerrors.LockNotAvailable,
)


class PostgresSink(Sink):
    """Write to the Postgres table ``table`` (``name`` or ``schema.name``).

    ``mode="append"`` inserts every row; ``mode="upsert"`` replaces the row with the
    same ``key`` columns (the table is created with them as primary key). ``dsn`` is a
    libpq connection string or URI (default: the ``STREAM_ETL_POSTGRES_DSN`` setting).
    The table is created from the first batch; ``schema_mode="merge"`` adds new
    columns as they appear, ``"strict"`` dead-letters rows that carry unknown columns.
    """

    def __init__(
        self,
        table: str,
        *,
        dsn: str | None = None,
        mode: Mode = "append",
        key: Sequence[str] = (),
        schema_mode: SchemaMode = "merge",
        positions_table: str = POSITIONS_TABLE,
        name: str | None = None,
    ) -> None:
        schema, _, bare = table.rpartition(".")
        if not bare:
            msg = "PostgresSink needs a table name such as 'orders' or 'analytics.orders'"
            raise ConfigurationError(msg)
        if mode not in ("append", "upsert"):
            msg = f"mode must be 'append' or 'upsert', got {mode!r}"
            raise ConfigurationError(msg)
        if mode == "upsert" and not key:
            msg = f"PostgresSink({table!r}, mode='upsert') needs key=[...]: the columns that identify a row"
            raise ConfigurationError(msg)
        if mode == "append" and key:
            msg = "key=[...] only applies to mode='upsert'; drop it or set mode='upsert'"
            raise ConfigurationError(msg)
        if schema_mode not in ("merge", "strict"):
            msg = f"schema_mode must be 'merge' or 'strict', got {schema_mode!r}"
            raise ConfigurationError(msg)
        self.table = table
        self.schema = schema or "public"
        self.bare = bare
        self.dsn = dsn
        self.mode = mode
        self.key = list(key)
        self.schema_mode = schema_mode
        self.positions_table = positions_table
        self.name = name

    def describe(self) -> str:
        keyed = f" upsert on {', '.join(self.key)}" if self.mode == "upsert" else ""
        return f"postgres {self.schema}.{self.bare}{keyed}"

    def default_name(self) -> str:
        return self.name or self.bare

    def default_dead_letters(self) -> PostgresSink:
        return PostgresSink(
            f"{self.schema}.{self.bare}_dead_letters",
            dsn=self.dsn,
            positions_table=self.positions_table,
            name=f"{self.default_name()}_dead_letters",
        )

    def open(self, ctx: RunContext) -> PostgresWriter:
        return PostgresWriter(self, ctx)


@dataclass(frozen=True, slots=True)
class PostgresSnapshot:
    """The table's columns (None: no table yet) and this job's stored positions."""

    columns: dict[str, str] | None
    positions: dict[tuple[str, str], int]

    def position(self, partition: SourcePartition) -> int | None:
        return self.positions.get(_key(partition))


def _key(partition: SourcePartition) -> tuple[str, str]:
    return partition.stream, str(partition.partition)


class PostgresWriter(SinkWriter):
    stores_cursors = True

    def __init__(self, sink: PostgresSink, ctx: RunContext) -> None:
        self.sink = sink
        self.app_id = ctx.app_id
        dsn = sink.dsn or (ctx.settings.postgres_dsn.get_secret_value() if ctx.settings.postgres_dsn else None)
        if not dsn:
            msg = (
                f"{sink.describe()} needs a database: PostgresSink(..., dsn='postgresql://user@host/db') "
                "or set STREAM_ETL_POSTGRES_DSN"
            )
            raise ConfigurationError(msg)
        self.dsn = dsn
        self.target = sql.Identifier(sink.schema, sink.bare)
        self.positions = sql.Identifier(sink.schema, sink.positions_table)
        self.target_name = f"{sink.schema}.{sink.bare}"
        self._conn: psycopg.Connection[Any] | None = None
        self._reader: psycopg.Connection[Any] | None = None
        with self._errors("creating the positions table"):
            self._create_positions_table()

    # Connections -----------------------------------------------------------------

    def _connect(self) -> psycopg.Connection[Any]:
        try:
            return psycopg.connect(self.dsn, autocommit=True, connect_timeout=10)
        except psycopg.ProgrammingError as exc:
            msg = f"the Postgres connection string for {self.target_name} is invalid: {exc}"
            raise ConfigurationError(msg) from exc
        except psycopg.OperationalError as exc:
            msg = f"cannot connect to Postgres for {self.target_name}: {exc}"
            raise SinkUnavailable(msg, table_uri=self.target_name) from exc

    def _writer_conn(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed or self._conn.broken:
            if self._conn is not None:
                self._conn.close()
            self._conn = self._connect()
        return self._conn

    def _reader_conn(self) -> psycopg.Connection[Any]:
        """A second connection for reads from other threads (the fetch thread's assignments)."""
        if self._reader is None or self._reader.closed or self._reader.broken:
            if self._reader is not None:
                self._reader.close()
            self._reader = self._connect()
        return self._reader

    @contextmanager
    def _errors(self, doing: str, positions: Mapping[SourcePartition, int] | None = None) -> Iterator[None]:
        """Translate psycopg errors at the boundary: conflicts, outages, refusals."""
        try:
            yield
        except _CONFLICTS as exc:
            msg = f"{doing} on {self.target_name} conflicted with another writer: {exc}"
            raise PositionConflict(msg, table_uri=self.target_name, positions=positions) from exc
        except psycopg.OperationalError as exc:
            msg = f"{doing} on {self.target_name} failed: {exc}"
            raise SinkUnavailable(msg, table_uri=self.target_name) from exc
        except psycopg.Error as exc:
            msg = f"{doing} on {self.target_name} failed: {exc}"
            raise SinkRejected(msg, table_uri=self.target_name) from exc

    def _create_positions_table(self) -> None:
        statement = sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} ("
            " target_table VARCHAR(512) NOT NULL, app_id VARCHAR(256) NOT NULL,"
            " stream VARCHAR(512) NOT NULL, part VARCHAR(256) NOT NULL,"
            " position BIGINT NOT NULL, cursor VARCHAR(4096), writer VARCHAR(256),"
            " updated_at TIMESTAMPTZ NOT NULL,"
            " PRIMARY KEY (target_table, app_id, stream, part))"
        ).format(self.positions)
        conn = self._writer_conn()
        try:
            conn.execute(statement)
        except pgerrors.UniqueViolation:  # two workers created it at once: it exists now
            pass

    # Reads ----------------------------------------------------------------------------

    def _read(self, conn: psycopg.Connection[Any]) -> dict[tuple[str, str], tuple[int, str | None]]:
        rows = conn.execute(
            sql.SQL("SELECT stream, part, position, cursor FROM {} WHERE target_table = %s AND app_id = %s").format(
                self.positions
            ),
            (self.target_name, self.app_id),
        ).fetchall()
        return {(stream, part): (position, cursor) for stream, part, position, cursor in rows}

    def read_positions(self, partitions: Sequence[SourcePartition]) -> dict[SourcePartition, int]:
        with self._errors("reading positions"):
            stored = self._read(self._reader_conn())
        return {sp: stored[_key(sp)][0] for sp in partitions if _key(sp) in stored}

    def read_cursors(self, partitions: Sequence[SourcePartition]) -> dict[SourcePartition, str]:
        with self._errors("reading cursors"):
            stored = self._read(self._reader_conn())
        return {sp: cursor for sp in partitions if (cursor := stored.get(_key(sp), (0, None))[1]) is not None}

    def _columns(self, conn: psycopg.Connection[Any]) -> dict[str, str] | None:
        rows = conn.execute(
            "SELECT column_name, data_type FROM information_schema.columns"
            " WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
            (self.sink.schema, self.sink.bare),
        ).fetchall()
        return {name: kind for name, kind in rows} or None

    def snapshot(self) -> PostgresSnapshot:
        with self._errors("reading the table"):
            conn = self._writer_conn()
            stored = self._read(conn)
            return PostgresSnapshot(self._columns(conn), {k: v[0] for k, v in stored.items()})

    # Schema --------------------------------------------------------------------------------

    def conform(self, table: pa.Table, snapshot: Any) -> pa.Table:
        lineage = table[LINEAGE]
        data = table.drop_columns([LINEAGE])
        missing = [k for k in self.sink.key if k not in data.column_names]
        if missing:
            msg = f"key column(s) {missing} are missing from the rows for {self.target_name}"
            raise RowsRejected(msg)
        for k in self.sink.key:
            if data[k].null_count:
                msg = f"key column {k!r} is null: {self.target_name} upserts on {self.sink.key}"
                raise ValueError(msg)  # per row: the run loop isolates the rows with a null key
        columns: dict[str, str] | None = snapshot.columns
        if columns is None:
            data = data.select([c for c in data.column_names if not pa.types.is_null(data[c].type)])
        else:
            data = self._align(data, columns)
        return data.append_column(LINEAGE, lineage)

    def _align(self, data: pa.Table, columns: dict[str, str]) -> pa.Table:
        kept: list[str] = []
        for name in data.column_names:
            column = data[name]
            if name in columns:
                kept.append(name)
            elif pa.types.is_null(column.type):
                continue
            elif self.sink.schema_mode == "merge":
                kept.append(name)
            elif column.null_count < len(column):
                msg = (
                    f"column {name!r} is not in table {self.target_name} (schema_mode='strict'); "
                    "set schema_mode='merge' to add it"
                )
                raise ValueError(msg)
        out = data.select(kept)
        for i, name in enumerate(kept):
            column, target = out[name], ARROW_FOR_SQL.get(columns.get(name, ""))
            if target is None or column.type.equals(target) or is_nested(column.type):
                continue
            try:
                out = out.set_column(i, name, pc.cast(column, target, safe=True))
            except (pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
                msg = f"column {name!r} is {column.type}, table {self.target_name} has {columns[name]}: {exc}"
                raise RowsRejected(msg) from exc
        return out

    # Commit ------------------------------------------------------------------------------

    def commit(
        self,
        snapshot: Any,
        table: pa.Table | None,
        positions: dict[SourcePartition, int],
        *,
        cursors: Mapping[SourcePartition, str] | None = None,
    ) -> CommitInfo:
        rows = table.num_rows if table is not None else 0
        with self._errors("committing", positions):
            conn = self._writer_conn()
            with conn.transaction():
                self._fence(conn, snapshot, positions)
                if table is not None and table.num_columns:
                    self._ensure_table(conn, table, snapshot.columns)
                    if rows:
                        self._load(conn, table)
                self._store_positions(conn, snapshot, positions, cursors or {})
        return CommitInfo(rows=rows)

    def _fence(
        self, conn: psycopg.Connection[Any], snapshot: PostgresSnapshot, positions: Mapping[SourcePartition, int]
    ) -> None:
        keys = sorted({_key(sp) for sp in positions})
        current = dict(
            ((stream, part), position)
            for stream, part, position in conn.execute(
                sql.SQL(
                    "SELECT stream, part, position FROM {} WHERE target_table = %s AND app_id = %s"
                    " AND stream = ANY(%s) AND part = ANY(%s) ORDER BY stream, part FOR UPDATE"
                ).format(self.positions),
                (self.target_name, self.app_id, [k[0] for k in keys], [k[1] for k in keys]),
            ).fetchall()
        )
        moved = [f"{s}-{p}" for s, p in keys if current.get((s, p)) != snapshot.positions.get((s, p))]
        if moved:
            msg = (
                f"stored positions of {', '.join(moved)} in {self.target_name} moved since the batch was planned "
                "(another worker committed them)"
            )
            raise PositionConflict(msg, table_uri=self.target_name, positions=positions)

    def _ensure_table(self, conn: psycopg.Connection[Any], table: pa.Table, columns: dict[str, str] | None) -> None:
        if columns is None:
            fields = [sql.SQL("{} {}").format(sql.Identifier(f.name), sql.SQL(sql_type(f.type))) for f in table.schema]
            if self.sink.key:
                fields.append(
                    sql.SQL("PRIMARY KEY ({})").format(sql.SQL(", ").join(map(sql.Identifier, self.sink.key)))
                )
            conn.execute(sql.SQL("CREATE TABLE IF NOT EXISTS {} ({})").format(self.target, sql.SQL(", ").join(fields)))
            log.info("created table %s", self.target_name)
            return
        for field in table.schema:
            if field.name not in columns:
                conn.execute(
                    sql.SQL("ALTER TABLE {} ADD COLUMN {} {}").format(
                        self.target, sql.Identifier(field.name), sql.SQL(sql_type(field.type))
                    )
                )
                log.info("added column %s %s to %s", field.name, sql_type(field.type), self.target_name)

    def _load(self, conn: psycopg.Connection[Any], table: pa.Table) -> None:
        names = sql.SQL(", ").join(map(sql.Identifier, table.column_names))
        if self.sink.mode == "append":
            _copy(conn, self.target, names, table)
            return
        table = last_per_key(table, self.sink.key)
        stage = sql.Identifier(f"stream_etl_stage_{os.getpid()}")
        conn.execute(sql.SQL("CREATE TEMPORARY TABLE {} (LIKE {}) ON COMMIT DROP").format(stage, self.target))
        _copy(conn, stage, names, table)
        match = sql.SQL(" AND ").join(
            sql.SQL("{}.{} = {}.{}").format(self.target, sql.Identifier(k), stage, sql.Identifier(k))
            for k in self.sink.key
        )
        conn.execute(sql.SQL("DELETE FROM {} USING {} WHERE {}").format(self.target, stage, match))
        conn.execute(sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {}").format(self.target, names, names, stage))

    def _store_positions(
        self,
        conn: psycopg.Connection[Any],
        snapshot: PostgresSnapshot,
        positions: Mapping[SourcePartition, int],
        cursors: Mapping[SourcePartition, str],
    ) -> None:
        now = datetime.now(UTC)
        updates: list[tuple[Any, ...]] = []
        inserts: list[tuple[Any, ...]] = []
        for sp, position in positions.items():
            stream, part = _key(sp)
            row = (position, cursors.get(sp), WORKER, now, self.target_name, self.app_id, stream, part)
            (updates if snapshot.positions.get((stream, part)) is not None else inserts).append(row)
        with conn.cursor() as cursor:
            if updates:
                cursor.executemany(
                    sql.SQL(
                        "UPDATE {} SET position = %s, cursor = %s, writer = %s, updated_at = %s"
                        " WHERE target_table = %s AND app_id = %s AND stream = %s AND part = %s"
                    ).format(self.positions),
                    updates,
                )
            if inserts:  # a plain INSERT: a concurrent first commit of the same partition fails here
                cursor.executemany(
                    sql.SQL(
                        "INSERT INTO {} (position, cursor, writer, updated_at, target_table, app_id, stream, part)"
                        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
                    ).format(self.positions),
                    inserts,
                )

    def summary(self) -> dict[str, Any]:
        """Row count, on a connection of its own (the run loop asks after closing the writer)."""
        location = f"postgres {self.target_name}"
        try:
            with self._errors("counting rows"), self._connect() as conn:
                if self._columns(conn) is None:
                    return {"location": location, "rows": 0}
                found = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(self.target)).fetchone()
        except (SinkUnavailable, SinkRejected):
            return {"location": location}
        return {"location": location, "rows": int(found[0]) if found else 0}

    def close(self) -> None:
        for conn in (self._conn, self._reader):
            if conn is not None:
                conn.close()
        self._conn = self._reader = None


def last_per_key(table: pa.Table, key: Sequence[str]) -> pa.Table:
    """The last row of every key, in their original order (an upsert applies each key once)."""
    index = pc.subtract(pc.cumulative_sum(pa.repeat(pa.scalar(1, pa.int64()), table.num_rows)), 1)
    grouped = table.select(list(key)).append_column("__row", index).group_by(list(key), use_threads=False)
    last = grouped.aggregate([("__row", "max")])["__row_max"]
    if len(last) == table.num_rows:
        return table
    return table.take(pc.take(last, pc.sort_indices(last)))


def copy_payload(table: pa.Table) -> bytes:
    """``table`` as CSV that ``COPY ... (FORMAT csv)`` reads: nested values as JSON text,
    binary as ``\\x`` hex, null as an unquoted empty field, strings always quoted."""
    special = [f.name for f in table.schema if is_nested(f.type) or is_binary(f.type)]
    dictionaries = [f.name for f in table.schema if pa.types.is_dictionary(f.type)]
    for name in dictionaries:
        table = table.set_column(
            table.column_names.index(name), name, pc.cast(table[name], table.schema.field(name).type.value_type)
        )
    if special:
        import duckdb

        def quoted(name: str) -> str:
            return '"' + name.replace('"', '""') + '"'

        selects = []
        for field in table.schema:
            if is_nested(field.type):
                selects.append(f"to_json({quoted(field.name)})::VARCHAR AS {quoted(field.name)}")
            elif is_binary(field.type):
                selects.append(f"'\\x' || hex({quoted(field.name)}) AS {quoted(field.name)}")
            else:
                selects.append(quoted(field.name))
        with duckdb.connect() as con:
            con.register("rows", table)
            table = con.sql(f"SELECT {', '.join(selects)} FROM rows").to_arrow_table()  # noqa: S608 - quoted names
    buffer = io.BytesIO()
    pacsv.write_csv(table, buffer, pacsv.WriteOptions(include_header=False, quoting_style="needed"))
    return buffer.getvalue()


def _copy(conn: psycopg.Connection[Any], target: sql.Composable, names: sql.Composable, table: pa.Table) -> None:
    payload = copy_payload(table)
    with (
        conn.cursor() as cursor,
        cursor.copy(sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv)").format(target, names)) as copy,
    ):
        view = memoryview(payload)
        for start in range(0, len(view), 1 << 20):
            copy.write(view[start : start + (1 << 20)])
