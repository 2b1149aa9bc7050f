"""Parquet files sink: Hive-partitioned files named after the source positions they hold.

Layout under the sink's root (a local directory or ``s3://bucket/prefix``)::

    country=DE/part-orders-0-1000-1999_orders-1-800-1650-0.parquet    data (Hive partitions)
    _stream_etl/commits/00000000000000000007.json                     one manifest per commit

A commit writes the batch's data files, then its manifest: the files, and per source
partition the last position written (and a cursor). The manifest is the commit point:
stored positions are read back from the manifests, so a batch whose manifest is missing
was never committed and is read again. A data file's name is derived from the range of
positions its commit covers (``<stream>-<partition>-<first>-<last>`` for every partition,
``first`` = the stored position + 1), so a replay of the same range overwrites the same
files instead of adding copies. Files a crash left without a manifest (a replay whose
batch boundaries differ) are deleted when the sink is opened, before anything is read.

"Exactly once" here means: after any crash and replay, the directory holds each source
record's row once, and the stored positions (from the manifests) say where to resume.
The sink assumes one writer per directory: the clean-up at open would delete the
uncommitted files of another live writer, and on S3 two concurrent commits of one
version are not fenced (use ``KafkaSource(assignment="direct")`` with one worker, or a
Delta table for several). Readers: :func:`read_table` reads only committed files;
``pyarrow.dataset`` over the directory (it skips ``_stream_etl``) sees the same rows
once the writer has opened after a crash.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import socket
import threading
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs

from stream_etl.catalog import TableCommit, TablePartition, adds_columns, tell_catalog
from stream_etl.context import RunContext
from stream_etl.errors import ConfigurationError, PositionConflict, RowsRejected, SinkUnavailable
from stream_etl.records import LINEAGE, SourcePartition
from stream_etl.settings import Settings
from stream_etl.sinks import CommitInfo, Sink, SinkWriter
from stream_etl.storage import filesystem_for

log = logging.getLogger(__name__)

WORKER = f"{socket.gethostname()}:{os.getpid()}"
COMMITS = "_stream_etl/commits"
Compression = Literal["zstd", "snappy", "gzip", "lz4", "none"]


class ParquetSink(Sink):
    """Write Parquet files under ``uri`` (a local directory or ``s3://bucket/prefix``),
    in Hive-style directories by ``partition_by``."""

    def __init__(
        self,
        uri: str,
        *,
        partition_by: Sequence[str] = (),
        compression: Compression = "zstd",
        name: str | None = None,
    ) -> None:
        if not uri:
            msg = "ParquetSink needs a directory such as s3://lake/orders_files or ./files/orders"
            raise ConfigurationError(msg)
        if compression not in ("zstd", "snappy", "gzip", "lz4", "none"):
            msg = f"compression must be one of zstd, snappy, gzip, lz4, none; got {compression!r}"
            raise ConfigurationError(msg)
        self.uri = uri.rstrip("/")
        self.partition_by = list(partition_by)
        self.compression = compression
        self.name = name

    def describe(self) -> str:
        parts = f" partitioned by {', '.join(self.partition_by)}" if self.partition_by else ""
        return f"parquet {self.uri}{parts}"

    def default_name(self) -> str:
        return self.name or self.uri.rsplit("/", 1)[-1] or "parquet"

    def default_dead_letters(self) -> ParquetSink:
        return ParquetSink(f"{self.uri}_dead_letters", name=f"{self.default_name()}_dead_letters")

    def open(self, ctx: RunContext) -> ParquetWriter:
        return ParquetWriter(self, ctx)


@dataclass(slots=True)
class Manifest:
    version: int
    app_id: str
    files: list[str]
    positions: dict[tuple[str, str], int]
    cursors: dict[tuple[str, str], str]
    schema: pa.Schema | None

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "version": self.version,
                "app_id": self.app_id,
                "files": self.files,
                "positions": [[s, p, v, self.cursors.get((s, p))] for (s, p), v in sorted(self.positions.items())],
                "schema": base64.b64encode(self.schema.serialize().to_pybytes()).decode() if self.schema else None,
                "writer": WORKER,
                "committed_at": datetime.now(UTC).isoformat(),
            },
            indent=1,
        ).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Manifest:
        raw = json.loads(data)
        schema = pa.ipc.read_schema(pa.py_buffer(base64.b64decode(raw["schema"]))) if raw.get("schema") else None
        return cls(
            version=int(raw["version"]),
            app_id=str(raw["app_id"]),
            files=list(raw["files"]),
            positions={(s, p): int(v) for s, p, v, _ in raw["positions"]},
            cursors={(s, p): c for s, p, _, c in raw["positions"] if c is not None},
            schema=schema,
        )


@dataclass(slots=True)
class ParquetSnapshot:
    """The directory's committed state for this job: last version, positions, schema."""

    version: int
    positions: dict[tuple[str, str], int] = field(default_factory=dict)
    cursors: dict[tuple[str, str], str] = field(default_factory=dict)
    schema: pa.Schema | None = None

    def position(self, partition: SourcePartition) -> int | None:
        return self.positions.get(_key(partition))


def _key(partition: SourcePartition) -> tuple[str, str]:
    return partition.stream, str(partition.partition)


class ParquetWriter(SinkWriter):
    stores_cursors = True

    def __init__(self, sink: ParquetSink, ctx: RunContext) -> None:
        self.sink = sink
        self.app_id = ctx.app_id
        self.fs, self.root = filesystem_for(sink.uri, ctx.settings)
        self.local = isinstance(self.fs, pafs.LocalFileSystem)
        self._manifests: dict[str, Manifest] = {}
        self._state = ParquetSnapshot(version=-1)
        self._lock = threading.Lock()  # the fetch thread reads positions while the run loop commits
        self.catalog = ctx.catalog
        try:
            self._refresh()
            self._remove_uncommitted()
        except OSError as exc:
            msg = f"opening {sink.uri} failed: {exc}"
            raise SinkUnavailable(msg, table_uri=sink.uri) from exc
        #: Hive partition folders committed so far (kept only for the catalog, to tell it new ones).
        self._partitions = {_folder(f) for f in self.committed_files()} if self.catalog is not None else set()

    # Reading the log -------------------------------------------------------------------

    def _refresh(self) -> ParquetSnapshot:
        """Read manifests not seen yet; fold this job's into the stored positions."""
        listing = self.fs.get_file_info(pafs.FileSelector(f"{self.root}/{COMMITS}", allow_not_found=True))
        names = sorted(i.base_name for i in listing if i.is_file and i.base_name.endswith(".json"))
        with self._lock:
            for name in names:
                if name in self._manifests:
                    continue
                with self.fs.open_input_stream(f"{self.root}/{COMMITS}/{name}") as stream:
                    self._fold(name, Manifest.from_json(stream.read()))
            state = self._state
            return ParquetSnapshot(state.version, dict(state.positions), dict(state.cursors), state.schema)

    def _fold(self, name: str, manifest: Manifest) -> None:
        self._manifests[name] = manifest
        state = self._state
        state.version = max(state.version, manifest.version)
        if manifest.schema is not None:
            state.schema = manifest.schema
        if manifest.app_id == self.app_id:
            state.positions.update(manifest.positions)
            state.cursors.update(manifest.cursors)

    def committed_files(self) -> list[str]:
        """Paths (relative to the root) of every committed data file."""
        return [f for m in self._manifests.values() for f in m.files]

    def _remove_uncommitted(self) -> None:
        """Delete data files no manifest names: what a crash left between files and manifest."""
        committed = set(self.committed_files())
        listing = self.fs.get_file_info(pafs.FileSelector(self.root, recursive=True, allow_not_found=True))
        prefix = self.root + "/"
        for info in listing:
            relative = info.path[len(prefix) :] if info.path.startswith(prefix) else info.path
            if info.is_file and not relative.startswith("_") and relative not in committed:
                if info.base_name.startswith("part-") and info.base_name.endswith(".parquet"):
                    log.info("removing %s: written by a commit that did not complete", info.path)
                    self.fs.delete_file(info.path)

    def read_positions(self, partitions: Sequence[SourcePartition]) -> dict[SourcePartition, int]:
        snapshot = self.snapshot()
        return {sp: v for sp in partitions if (v := snapshot.position(sp)) is not None}

    def read_cursors(self, partitions: Sequence[SourcePartition]) -> dict[SourcePartition, str]:
        snapshot = self.snapshot()
        return {sp: c for sp in partitions if (c := snapshot.cursors.get(_key(sp))) is not None}

    def snapshot(self) -> ParquetSnapshot:
        try:
            return self._refresh()
        except OSError as exc:
            msg = f"reading {self.sink.uri} failed: {exc}"
            raise SinkUnavailable(msg, table_uri=self.sink.uri) from exc

    # Schema --------------------------------------------------------------------------------

    def conform(self, table: pa.Table, snapshot: Any) -> pa.Table:
        lineage = table[LINEAGE]
        data = table.drop_columns([LINEAGE])
        missing = [c for c in self.sink.partition_by if c not in data.column_names]
        if missing:
            msg = f"partition column(s) {missing} are missing from the rows for {self.sink.uri}"
            raise RowsRejected(msg)
        data = data.select([c for c in data.column_names if not pa.types.is_null(data[c].type)])
        schema: pa.Schema | None = snapshot.schema
        if schema is not None:  # keep every file's types alike, so readers can unify them
            for field_ in schema:
                if field_.name in data.column_names and not data[field_.name].type.equals(field_.type):
                    i = data.column_names.index(field_.name)
                    try:
                        data = data.set_column(i, field_.name, pc.cast(data[field_.name], field_.type, safe=True))
                    except (pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
                        msg = f"column {field_.name!r} is {data[field_.name].type}, {self.sink.uri} has {field_.type}"
                        raise RowsRejected(msg) from exc
        return data.append_column(LINEAGE, lineage)

    # Commit ------------------------------------------------------------------------------

    def commit(
        self,
        snapshot: Any,
        table: pa.Table | None,
        positions: dict[SourcePartition, int],
        *,
        cursors: Mapping[SourcePartition, str] | None = None,
    ) -> CommitInfo:
        version = snapshot.version + 1
        files: list[str] = []
        try:
            if table is not None and table.num_rows:
                files = self._write_files(table, file_tag(snapshot, positions))
            merged = pa.unify_schemas([snapshot.schema, table.schema]) if snapshot.schema and table else None
            manifest = Manifest(
                version=version,
                app_id=self.app_id,
                files=files,
                positions={_key(sp): v for sp, v in positions.items()},
                cursors={_key(sp): c for sp, c in (cursors or {}).items()},
                schema=merged or (table.schema if table is not None else snapshot.schema),
            )
            self._publish(version, manifest.to_json())
        except OSError as exc:
            msg = f"writing {self.sink.uri} failed: {exc}"
            raise SinkUnavailable(msg, table_uri=self.sink.uri) from exc
        with self._lock:
            self._fold(manifest_name(version), manifest)
        if self.catalog is not None:
            tell_catalog(self.catalog, self.sink.uri, lambda: self._table_commit(snapshot, manifest))
        return CommitInfo(rows=table.num_rows if table is not None else 0, version=version)

    def _table_commit(self, snapshot: ParquetSnapshot, manifest: Manifest) -> TableCommit | None:
        """What the catalog needs to know of ``manifest``'s commit: the directory when the commit
        created it, changed its schema or wrote partition folders not written before; else None."""
        if manifest.schema is None:
            return None
        folders = sorted({_folder(f) for f in manifest.files} - self._partitions - {""})
        self._partitions.update(folders)
        before = snapshot.schema.names if snapshot.schema is not None else None
        created = before is None
        if not (created or folders or adds_columns(manifest.schema.names, before)):
            return None
        return TableCommit(
            location=self.sink.uri,
            format="parquet",
            schema=manifest.schema,
            partition_keys=tuple(self.sink.partition_by),
            table_version=manifest.version,
            created=created,
            app_id=self.app_id,
            partitions=tuple(
                TablePartition(tuple(unquote(p.split("=", 1)[1]) for p in f.split("/")), f"{self.sink.uri}/{f}")
                for f in folders
            ),
        )

    def _write_files(self, table: pa.Table, tag: str) -> list[str]:
        written: list[str] = []
        partitioning = (
            ds.partitioning(table.select(self.sink.partition_by).schema, flavor="hive")
            if self.sink.partition_by
            else None
        )
        codec = None if self.sink.compression == "none" else self.sink.compression
        ds.write_dataset(
            table,
            self.root,
            filesystem=self.fs,
            format="parquet",
            partitioning=partitioning,
            basename_template=f"part-{tag}-{{i}}.parquet",
            existing_data_behavior="overwrite_or_ignore",
            file_options=ds.ParquetFileFormat().make_write_options(compression=codec),
            file_visitor=lambda f: written.append(f.path),
            create_dir=True,
            use_threads=False,
        )
        prefix = self.root + "/"
        return sorted(p[len(prefix) :] if p.startswith(prefix) else p for p in written)

    def _publish(self, version: int, payload: bytes) -> None:
        """Write the manifest of ``version``; refuse if one exists (another writer committed it)."""
        path = f"{self.root}/{COMMITS}/{manifest_name(version)}"
        if self.local:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            temporary = f"{path}.{uuid.uuid4().hex}.tmp"
            with open(temporary, "wb") as out:
                out.write(payload)
                out.flush()
                os.fsync(out.fileno())
            try:
                os.link(temporary, path)  # atomic, and fails if the version exists
            except FileExistsError as exc:
                msg = f"version {version} of {self.sink.uri} was committed by another writer"
                raise PositionConflict(msg, table_uri=self.sink.uri, table_version=version - 1) from exc
            finally:
                os.unlink(temporary)
            return
        if self.fs.get_file_info(path).type != pafs.FileType.NotFound:
            msg = f"version {version} of {self.sink.uri} was committed by another writer"
            raise PositionConflict(msg, table_uri=self.sink.uri, table_version=version - 1)
        with self.fs.open_output_stream(path) as out:  # one PUT: all or nothing
            out.write(payload)

    def summary(self) -> dict[str, Any]:
        return {"location": self.sink.uri, "version": self._state.version, "files": len(self.committed_files())}


def _folder(path: str) -> str:
    """The Hive partition folder (``country=DE/day=1``) of a data file's relative path ("" at the root)."""
    return path.rpartition("/")[0]


def manifest_name(version: int) -> str:
    return f"{version:020d}.json"


def file_tag(snapshot: ParquetSnapshot, positions: Mapping[SourcePartition, int]) -> str:
    """``<stream>-<partition>-<first>-<last>`` per partition (first = stored + 1), joined by ``_``;
    a hash of that when it would make a name longer than 160 characters."""
    ranges = []
    for sp in sorted(positions):
        stored = snapshot.position(sp)
        ranges.append(f"{sp.stream}-{sp.partition}-{stored + 1 if stored is not None else 0}-{positions[sp]}")
    tag = "_".join(ranges)
    if len(tag) > 160:
        tag = f"{len(ranges)}p-{hashlib.sha256(tag.encode()).hexdigest()[:32]}"
    return tag


def read_table(uri: str, settings: Settings | None = None) -> pa.Table | None:
    """The rows of every committed file under ``uri`` (None before the first commit)."""
    fs, root = filesystem_for(uri, settings or Settings())
    listing = fs.get_file_info(pafs.FileSelector(f"{root}/{COMMITS}", allow_not_found=True))
    files: list[str] = []
    schema: pa.Schema | None = None
    for info in sorted(listing, key=lambda i: i.base_name):
        if info.is_file and info.base_name.endswith(".json"):
            with fs.open_input_stream(info.path) as stream:
                manifest = Manifest.from_json(stream.read())
            files += [f"{root}/{f}" for f in manifest.files]
            schema = manifest.schema or schema
    if schema is None:
        return None
    if not files:
        return schema.empty_table()
    directories = files[0][len(root) + 1 :].split("/")[:-1]
    names = [d.split("=", 1)[0] for d in directories if "=" in d]
    partitioning = ds.partitioning(pa.schema([schema.field(n) for n in names]), flavor="hive") if names else None
    dataset = ds.dataset(
        files, schema=schema, filesystem=fs, format="parquet", partitioning=partitioning, partition_base_dir=root
    )
    return dataset.to_table()
