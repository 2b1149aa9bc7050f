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

import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc

from connectors.postgres.config import ARROW_FOR_SQL, POSITIONS_TABLE, arrow_field, is_nested, sql_type
from connectors.postgres.copy import copy_rows, last_per_key
from connectors.postgres.positions import PositionsTable, key_of
from stream_etl.catalog import TableCommit, adds_columns, tell_catalog
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
        return self.positions.get(key_of(partition))


class PostgresWriter(SinkWriter):
    stores_cursors = True

    def __init__(self, sink: PostgresSink, ctx: RunContext) -> None:
        self.sink = sink
        self.app_id = ctx.app_id
        self.catalog = ctx.catalog
        dsn = sink.dsn or (ctx.settings.postgres_dsn.get_secret_value() if ctx.settings.postgres_dsn else None)
        if not dsn:
            msg = (
                f"{sink.describe()} needs a database: PostgresSink(..., dsn='postgresql://user@host/db') "
                "or set STREAM_ETL_POSTGRES_DSN"
            )
            raise ConfigurationError(msg)
        self.dsn = dsn
        self.target = sql.Identifier(sink.schema, sink.bare)
        self.target_name = f"{sink.schema}.{sink.bare}"
        self.table = PositionsTable(sql.Identifier(sink.schema, sink.positions_table), self.target_name, ctx.app_id)
        self._conn: psycopg.Connection[Any] | None = None
        self._reader: psycopg.Connection[Any] | None = None
        with self._errors("creating the positions table"):
            self.table.create(self._writer_conn())

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

    # Reads ----------------------------------------------------------------------------

    def read_positions(self, partitions: Sequence[SourcePartition]) -> dict[SourcePartition, int]:
        with self._errors("reading positions"):
            stored = self.table.read(self._reader_conn())
        return {sp: stored[key_of(sp)][0] for sp in partitions if key_of(sp) in stored}

    def read_cursors(self, partitions: Sequence[SourcePartition]) -> dict[SourcePartition, str]:
        with self._errors("reading cursors"):
            stored = self.table.read(self._reader_conn())
        return {sp: cursor for sp in partitions if (cursor := stored.get(key_of(sp), (0, None))[1]) is not None}

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
            stored = self.table.read(conn)
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
                self.table.fence(conn, snapshot.positions, positions)
                if table is not None and table.num_columns:
                    self._ensure_table(conn, table, snapshot.columns)
                    if rows:
                        self._load(conn, table)
                self.table.store(conn, snapshot.positions, positions, cursors or {})
        if self.catalog is not None and table is not None and table.num_columns:
            created = snapshot.columns is None
            if created or adds_columns(table.column_names, snapshot.columns):
                tell_catalog(self.catalog, self.target_name, lambda: self._table_commit(created=created))
        return CommitInfo(rows=rows)

    def _table_commit(self, *, created: bool) -> TableCommit:
        """The table as committed, for the catalog: its columns read back, as the crawler reads
        them, and a location without user or password (the crawler's ``postgres://`` form)."""
        conn = self._writer_conn()
        rows = conn.execute(
            "SELECT column_name, data_type, is_nullable, numeric_precision, numeric_scale, udt_name"
            " FROM information_schema.columns WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
            (self.sink.schema, self.sink.bare),
        ).fetchall()
        info = conn.info
        return TableCommit(
            location=f"postgres://{info.host}:{info.port}/{info.dbname}/{self.target_name}",
            format="postgres",
            schema=pa.schema([arrow_field(*row) for row in rows]),
            created=created,
            app_id=self.app_id,
        )

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
            copy_rows(conn, self.target, names, table)
            return
        table = last_per_key(table, self.sink.key)
        stage = sql.Identifier(f"stream_etl_stage_{os.getpid()}")
        conn.execute(sql.SQL("CREATE TEMPORARY TABLE {} (LIKE {}) ON COMMIT DROP").format(stage, self.target))
        copy_rows(conn, stage, names, table)
        match = sql.SQL(" AND ").join(
            sql.SQL("{}.{} = {}.{}").format(self.target, sql.Identifier(k), stage, sql.Identifier(k))
            for k in self.sink.key
        )
        conn.execute(sql.SQL("DELETE FROM {} USING {} WHERE {}").format(self.target, stage, match))
        conn.execute(sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {}").format(self.target, names, names, stage))

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
