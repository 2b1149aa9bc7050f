"""Crawl S3 or local prefixes: files become tables, Hive-style folders become partitions.

1. List every file under the prefix (pyarrow.fs, with the target's S3 settings). Names that
   start with ``_`` or ``.`` (``_SUCCESS``, ``.crc``) and the target's exclusions are skipped.
2. A folder holding ``_delta_log`` is one Delta table: schema and partition columns from the
   log (delta-rs); nothing below it is read as files.
3. Every other file is classified from its head (JSON lines, a JSON document or array, CSV,
   Avro container, custom classifiers) or its footer (Parquet). At most ``FILES_PER_FOLDER`` files per folder are
   read, the newest first.
4. Grouping (Glue's "compatible schemas at the same level"): the files under a folder make
   ONE table when they share a classification, sit at the same depth, and each file's
   columns overlap the first file's by at least half (Jaccard >= 0.5); the folders between
   the table and its files are its partitions: ``key=value`` names give the key (else
   ``partition_0``, ...), the values' type is inferred (int64, date32 or string). Folders
   that are not compatible are grouped one level down, each child folder its own table. A
   table the crawler registered earlier keeps its place: no table is made above it.
5. Recrawl policy ``new_folders_only``: files under partition folders registered already
   are not read, and tables are only given their new partitions.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Sequence
from dataclasses import dataclass

import orjson
import pyarrow as pa
import pyarrow.fs as pafs

from stream_etl.control.classifiers import classify
from stream_etl.control.crawl_streams import CrawlError
from stream_etl.control.crawl_targets import CrawlContext, Crawled, Found, FoundPartition, Target, table_name
from stream_etl.formats.inference import unify_schemas
from stream_etl.storage import filesystem_for

FILES_PER_FOLDER = 5
HEAD_BYTES = 1 << 20
SIMILARITY = 0.5
_HIVE = re.compile(r"^([^=/]+)=(.*)$")
_INT = re.compile(r"^[+-]?\d+$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True, slots=True)
class _File:
    folders: tuple[str, ...]  # relative to the prefix
    classification: str
    schema: pa.Schema
    parameters: dict[str, object]


class _Prefix:
    def __init__(self, target: Target, context: CrawlContext) -> None:
        self.target, self.context = target, context
        self.fs, path = filesystem_for(target.path, context.settings)
        self.root = path.rstrip("/")
        self.scheme = "s3://" if target.path.startswith(("s3://", "s3a://")) else ""

    def uri(self, folders: Sequence[str]) -> str:
        return self.scheme + "/".join([self.root, *folders])

    def storage_options(self) -> dict[str, str] | None:
        return self.context.settings.s3_storage_options() if self.scheme else None


def crawl_files(target: Target, context: CrawlContext) -> Crawled:
    prefix = _Prefix(target, context)
    try:
        infos = prefix.fs.get_file_info(pafs.FileSelector(prefix.root, recursive=True))
    except (FileNotFoundError, OSError) as exc:
        msg = f"cannot list {target.path}: {exc}; check the crawler's target and its connection"
        raise CrawlError(msg) from exc
    files = [i for i in infos if i.type == pafs.FileType.File]
    relative = {i.path: tuple(i.path[len(prefix.root) + 1 :].split("/")) for i in files}
    crawled = Crawled(scope=re.compile(re.escape(prefix.uri(())) + "(/.*)?"))
    delta_roots = sorted({parts[: parts.index("_delta_log")] for parts in relative.values() if "_delta_log" in parts})
    for folders in delta_roots:
        crawled.tables.append(_delta(prefix, folders))
    by_folder: dict[tuple[str, ...], list[pafs.FileInfo]] = {}
    for info in files:
        parts = relative[info.path]
        if any(parts[: len(d)] == d for d in delta_roots) or _skipped(parts, target.exclusions):
            continue
        if _known(prefix, parts[:-1]):
            continue
        by_folder.setdefault(parts[:-1], []).append(info)
    found: list[_File] = []
    for folders, infos_here in sorted(by_folder.items()):
        newest = sorted(infos_here, key=lambda i: (i.mtime_ns or 0, i.path), reverse=True)[:FILES_PER_FOLDER]
        for info in newest:
            crawled.sampled += 1
            file = _classify(prefix, info, folders)
            if file is None:
                crawled.unclassified.append(prefix.scheme + info.path)
            else:
                found.append(file)
    if found:
        crawled.tables.extend(_group(prefix, found, ()))
    return crawled


def _skipped(parts: tuple[str, ...], exclusions: list[str]) -> bool:
    if any(p.startswith(("_", ".")) for p in parts):
        return True
    path = "/".join(parts)
    return any(fnmatch.fnmatch(path, pattern) for pattern in exclusions)


def _known(prefix: _Prefix, folders: tuple[str, ...]) -> bool:
    known = prefix.context.known_folders
    if not known:
        return False
    return any(prefix.uri(folders[:depth]) in known for depth in range(1, len(folders) + 1))


def _classify(prefix: _Prefix, info: pafs.FileInfo, folders: tuple[str, ...]) -> _File | None:
    with prefix.fs.open_input_stream(info.path) as handle:
        magic = handle.read(4)
        parquet = magic == b"PAR1" or info.path.endswith(".parquet")
        head = b"" if parquet else magic + handle.read(HEAD_BYTES - len(magic))
    if parquet:  # the schema is in the footer
        import pyarrow.parquet as pq

        with prefix.fs.open_input_file(info.path) as handle:
            return _File(folders, "parquet", pq.ParquetFile(handle).schema_arrow, {})
    if head.startswith(b"Obj\x01"):
        samples = [head]
    elif (document := _document(head)) is not None:
        samples = document[: prefix.context.sample_size]
    else:
        lines = head.split(b"\n")
        if len(head) == HEAD_BYTES:
            lines = lines[:-1]  # cut off mid-line
        samples = [line for line in lines[: prefix.context.sample_size + 1] if line.strip()]
    answer = classify(samples, custom=prefix.context.custom)
    if answer is None:
        return None
    return _File(folders, answer.classification, answer.schema, dict(answer.parameters))


def _document(head: bytes) -> list[bytes] | None:
    """A whole file that is one JSON document over several lines (not JSON lines): a JSON array
    gives its items as samples, an object itself (for JSON path classifiers)."""
    body = head.strip()
    if len(head) == HEAD_BYTES or body[:1] not in (b"[", b"{") or b"\n" not in body:
        return None
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None  # JSON lines, or not JSON
    if isinstance(value, list):
        return [orjson.dumps(item) for item in value]
    return [orjson.dumps(value)]


def _delta(prefix: _Prefix, folders: tuple[str, ...]) -> Found:
    from deltalake import DeltaTable

    location = prefix.uri(folders)
    table = DeltaTable(location, storage_options=prefix.storage_options())
    name = folders[-1] if folders else prefix.root.rsplit("/", 1)[-1]
    return Found(
        name=table_name(name),
        location=location,
        format="delta",
        classification="delta",
        schema=pa.schema(table.schema().to_arrow()),
        partition_keys=tuple(table.metadata().partition_columns),
        parameters={"type_of_data": "file", "delta_version": table.version()},
    )


def _similar(a: pa.Schema, b: pa.Schema) -> bool:
    left, right = set(a.names), set(b.names)
    return len(left & right) / max(len(left | right), 1) >= SIMILARITY


def _compatible(prefix: _Prefix, files: list[_File], base: tuple[str, ...]) -> bool:
    below = prefix.uri(base) + "/"
    if any(location.startswith(below) for location in prefix.context.known_tables):
        return False
    first = files[0]
    depth = len(first.folders)
    return all(
        f.classification == first.classification and len(f.folders) == depth and _similar(first.schema, f.schema)
        for f in files
    )


def _group(prefix: _Prefix, files: list[_File], base: tuple[str, ...]) -> list[Found]:
    """The tables of ``files`` (all under folder ``base``): one if compatible, else per child folder."""
    if _compatible(prefix, files, base):
        return [_table(prefix, files, base)]
    tables = []
    here = [f for f in files if len(f.folders) == len(base)]
    if here:  # files beside the folders: a table of those like the first (others are left out)
        first = here[0]
        alike = [f for f in here if f.classification == first.classification and _similar(first.schema, f.schema)]
        tables.append(_table(prefix, alike, base))
    children: dict[str, list[_File]] = {}
    for f in files:
        if len(f.folders) > len(base):
            children.setdefault(f.folders[len(base)], []).append(f)
    for child, child_files in sorted(children.items()):
        tables.extend(_group(prefix, child_files, (*base, child)))
    return tables


def _table(prefix: _Prefix, files: list[_File], base: tuple[str, ...]) -> Found:
    levels = len(files[0].folders) - len(base)
    paths = sorted({f.folders[len(base) :] for f in files})
    keys = [_key(level, [p[level] for p in paths]) for level in range(levels)]
    values = [tuple(_value(segment) for segment in path) for path in paths]
    key_fields = [pa.field(k, _type([v[i] for v in values])) for i, k in enumerate(keys)]
    data = unify_schemas([f.schema for f in files])
    data = pa.schema([f for f in data if f.name not in keys])
    first = files[0]
    parameters: dict[str, object] = {**first.parameters, "type_of_data": "file", "files_sampled": len(files)}
    name = base[-1] if base else prefix.root.rsplit("/", 1)[-1]
    return Found(
        name=table_name(name),
        location=prefix.uri(base),
        format=first.classification,
        classification=first.classification,
        schema=pa.schema(list(data) + key_fields),
        partition_keys=tuple(keys),
        partitions=tuple(FoundPartition(v, prefix.uri((*base, *path))) for v, path in zip(values, paths, strict=True)),
        parameters=parameters,
        complete=prefix.context.known_folders is None,
    )


def _key(level: int, segments: list[str]) -> str:
    names = {m[1] if (m := _HIVE.match(s)) else None for s in segments}
    if len(names) == 1 and None not in names:
        return str(names.pop())
    return f"partition_{level}"


def _value(segment: str) -> str:
    match = _HIVE.match(segment)
    return match[2] if match else segment


def _type(values: list[str]) -> pa.DataType:
    if all(_INT.match(v) for v in values):
        return pa.int64()
    if all(_DATE.match(v) for v in values):
        return pa.date32()
    return pa.string()
