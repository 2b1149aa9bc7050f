"""Raw values -> Arrow, with bad records split off and kept for the dead-letter sink.

The JSON decoder joins a batch's values with newlines and hands the buffer to
Arrow's multi-threaded JSON reader in one call (flat objects with a declared schema go
through :mod:`stream_etl.flatjson` first, which writes Arrow buffers directly and gives way to
Arrow for anything it does not read exactly as Arrow would). A few C-speed checks on the
joined buffer prove that row *i* of the result came from value *i* (every value
starts with ``{``, ends with ``}``, holds no line break, and the row count matches). When a check
fails or Arrow rejects the buffer, the slow path classifies values one by one and
bisects the rest to find the records Arrow refuses, so one malformed record costs
a few extra parses of its neighbours, never the batch.

Arrow's reader recurses once per nesting level and overflows the thread's stack (a
segfault, not an exception) somewhere past 5,000 levels. Values nested deeper than
``max_depth`` are therefore dead-lettered before Arrow sees them (the guard and the
reader's own checks are in :mod:`stream_etl.json_reader`). The guard costs one
``max(map(len, values))`` per batch (~2% of a decode of small records): a value of
``L`` bytes cannot nest deeper than ``L / 2`` levels, so only values longer than
``2 * max_depth`` are looked at, with C-speed counts (one more read of their bytes,
~18% of the decode of 2 KB records) and, for the few with that many brackets, an
exact measure (strings removed by a regex, brackets summed by Arrow).
"""

from __future__ import annotations

import os
import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import orjson
import pyarrow as pa
import pyarrow.json as pa_json

from stream_etl.dead_letters import Failure
from stream_etl.errors import ConfigurationError
from stream_etl.flatjson import FlatJson
from stream_etl.json_reader import MAX_DEPTH, read_json, too_deep
from stream_etl.rawvalues import RawValues
from stream_etl.records import LINEAGE

DECODE_STEP = "decode"


@dataclass(frozen=True, slots=True)
class Decoded:
    """Decoded rows (with the lineage column) and the records that failed."""

    table: pa.Table | None
    failures: list[Failure] = field(default_factory=list)


class Format(ABC):
    """Turns a batch's raw values into an Arrow table."""

    @property
    def declares_schema(self) -> bool:
        """True when every batch has the same, declared columns."""
        return False

    @abstractmethod
    def decode(self, values: Sequence[bytes | None]) -> Decoded:
        """Decode ``values``; row ``i`` of the table carries lineage ``i``'s index."""


def _with_lineage(table: pa.Table, rows: pa.Array) -> pa.Table:
    return table.append_column(LINEAGE, rows)


class JsonFormat(Format):
    """One JSON object per record.

    With ``schema`` the reader converts straight to those types (about 1.5x faster
    than inference, and the same types in every batch); a value that does not fit
    is dead-lettered. ``unexpected_fields`` says what happens to fields the schema
    does not name: ``ignore`` drops them, ``infer`` adds inferred columns, ``error``
    dead-letters the record. Without a schema, types are inferred per batch and the
    sink casts them to the table's schema.
    """

    def __init__(
        self,
        schema: pa.Schema | None = None,
        *,
        unexpected_fields: Literal["ignore", "infer", "error"] = "ignore",
        block_size: int = 1 << 22,
        use_threads: bool | None = None,
        max_depth: int = MAX_DEPTH,
    ) -> None:
        """``use_threads`` parses blocks on Arrow's thread pool; by default only with 4+ cores,
        since on fewer it costs ~10% more CPU that the rest of the pipeline needs.
        ``max_depth``: values nested deeper are dead-lettered (Arrow would crash past ~5,000)."""
        if not 1 <= max_depth <= 4 * MAX_DEPTH:
            msg = f"max_depth must be between 1 and {4 * MAX_DEPTH} (Arrow's reader crashes on deeper JSON)"
            raise ConfigurationError(msg)
        self.max_depth = max_depth
        self.schema = schema
        self.unexpected_fields = unexpected_fields if schema is not None else "infer"
        self._parse_options = pa_json.ParseOptions(
            explicit_schema=schema, unexpected_field_behavior=self.unexpected_fields
        )
        threads = use_threads if use_threads is not None else (os.cpu_count() or 1) >= 4
        self._read_options = pa_json.ReadOptions(block_size=block_size, use_threads=threads)
        # Flat objects of declared types: parsed straight into Arrow buffers (stream_etl.flatjson),
        # Arrow's reader for whatever that fast path does not take exactly.
        self._fast = FlatJson.for_schema(schema, unexpected_fields=self.unexpected_fields)

    @property
    def declares_schema(self) -> bool:
        return self.schema is not None

    def __repr__(self) -> str:
        return f"JsonFormat(schema={self.schema!r}, unexpected_fields={self.unexpected_fields!r})"

    def _parse(self, buffer: bytes) -> pa.Table:
        return read_json(buffer, read_options=self._read_options, parse_options=self._parse_options)

    def decode(self, values: Sequence[bytes | None]) -> Decoded:
        n = len(values)
        if n == 0:
            return Decoded(None)
        objects = False  # every value known to start with "{" and end with "}"
        if isinstance(values, RawValues):  # a native reader's buffer: already joined
            if values.nulls:
                return self._decode_slowly(values.to_list())
            buffer, longest, objects = values.data, values.max_len, values.objects
        else:
            try:
                buffer = b"\n".join(values)  # type: ignore[arg-type]  # None is caught below
            except TypeError:
                return self._decode_slowly(values)
            longest = max(map(len, values))  # type: ignore[arg-type]
        if longest > 2 * self.max_depth and too_deep(values, self.max_depth):  # type: ignore[arg-type]
            return self._decode_slowly(values)
        if not objects and not _one_object_per_line(buffer, n):
            return self._decode_slowly(values)
        try:
            if not buffer.isascii():  # Arrow does not check UTF-8; isascii() copies nothing
                buffer.decode("utf-8")
            table = self._fast.parse(buffer, n) if self._fast is not None else None
            if table is None:
                table = self._parse(buffer)
        except (pa.ArrowInvalid, UnicodeDecodeError):
            return self._decode_slowly(values)
        if table.num_rows != n:
            return self._decode_slowly(values)
        return Decoded(_with_lineage(table, _row_indices(n)))

    def _decode_slowly(self, values: Sequence[bytes | None]) -> Decoded:
        """Classify each value, then bisect what Arrow refuses. Only for bad batches."""
        failures: list[Failure] = []
        rows: list[int] = []
        clean: list[bytes] = []
        for row, value in enumerate(values):
            problem, cleaned = _screen(value, self.max_depth)
            if problem is not None:
                failures.append(Failure(row, DECODE_STEP, "DecodeError", problem))
            else:
                rows.append(row)
                clean.append(cleaned)
        parts: list[tuple[list[int], pa.Table]] = []
        self._bisect(rows, clean, parts, failures)
        if not parts:
            return Decoded(None, failures)
        table = self._combine(parts, dict(zip(rows, clean, strict=True)), failures)
        failures.sort(key=lambda f: f.row)
        return Decoded(table, failures)

    def _bisect(
        self,
        rows: list[int],
        values: list[bytes],
        parts: list[tuple[list[int], pa.Table]],
        failures: list[Failure],
    ) -> None:
        if not rows:
            return
        try:
            table = self._parse(b"\n".join(values))
        except pa.ArrowInvalid as exc:
            if len(rows) == 1:
                failures.append(Failure(rows[0], DECODE_STEP, "DecodeError", _arrow_message(exc)))
                return
        else:
            if table.num_rows == len(rows):
                parts.append((rows, table))
                return
            if len(rows) == 1:
                message = f"value holds {table.num_rows} JSON objects; expected exactly one"
                failures.append(Failure(rows[0], DECODE_STEP, "DecodeError", message))
                return
        half = len(rows) // 2
        self._bisect(rows[:half], values[:half], parts, failures)
        self._bisect(rows[half:], values[half:], parts, failures)

    def _combine(
        self, parts: list[tuple[list[int], pa.Table]], values: dict[int, bytes], failures: list[Failure]
    ) -> pa.Table:
        """Concatenate parts parsed separately; inferred types may differ between them."""
        tables = [_with_lineage(t, pa.array(r, pa.int32())) for r, t in parts]
        try:
            return pa.concat_tables(tables, promote_options="permissive")
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            pass
        # Types drifted between records (a field seen as a number, then as a string).
        # The types of the largest part win (the majority, wherever the odd record sits
        # in the batch); the records of a part that does not fit are parsed again one by
        # one with those types: the ones that fit stay, the others fail.
        tables.sort(key=len, reverse=True)
        kept, schema = [tables[0]], tables[0].schema
        for table in tables[1:]:
            try:
                schema = pa.unify_schemas([schema, table.schema], promote_options="permissive")
                kept.append(table)
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                kept.extend(self._refit(table[LINEAGE].to_pylist(), values, schema, failures))
        return pa.concat_tables(kept, promote_options="permissive").sort_by(LINEAGE)

    def _refit(
        self, rows: list[int], values: dict[int, bytes], schema: pa.Schema, failures: list[Failure]
    ) -> list[pa.Table]:
        options = pa_json.ParseOptions(
            explicit_schema=schema.remove(schema.get_field_index(LINEAGE)), unexpected_field_behavior="infer"
        )
        fitted = []
        for row in rows:
            try:
                table = read_json(values[row], parse_options=options)
            except pa.ArrowInvalid as exc:
                failures.append(Failure(row, DECODE_STEP, "DecodeError", f"type drift: {_arrow_message(exc)}"))
                continue
            fitted.append(_with_lineage(table, pa.array([row], pa.int32())))
        return fitted


_INDICES = pa.array([], pa.int32())


def _row_indices(n: int) -> pa.Array:
    """0..n-1 as int32: a zero-copy slice of a cached array (building it costs ~13 ms per 100k)."""
    global _INDICES  # noqa: PLW0603 - a grow-only cache, replaced atomically
    if len(_INDICES) < n:
        _INDICES = pa.array(range(max(n, 2 * len(_INDICES))), pa.int32())
    return _INDICES.slice(0, n)


def _one_object_per_line(buffer: bytes, n: int) -> bool:
    """C-speed proof, with the row count, that row *i* Arrow reads is value *i*.

    The join put ``n - 1`` newlines; when there are exactly ``n - 1`` occurrences of
    ``}\\n{`` and the buffer starts with ``{`` and ends with ``}``, every value starts
    with ``{`` and ends with ``}``. A JSON object cannot go on past ``}`` with ``{``
    (inside a container that is a syntax error), so no object spans two values and
    each value yields at least one row; if Arrow reads ``n`` rows, each yields one.
    Line breaks inside a value are JSON whitespace or a parse error, never a new row
    that goes unnoticed: a second object in one value raises the row count. A native
    reader checks each value's first and last byte as it copies it (``RawValues.objects``),
    which proves the same without this pass over the buffer (~13 ms per 11 MB).
    """
    return buffer[:1] == b"{" and buffer[-1:] == b"}" and buffer.count(b"}\n{") == n - 1


def _screen(value: bytes | None, max_depth: int = MAX_DEPTH) -> tuple[str | None, bytes]:
    """Why ``value`` cannot be one JSON object on one line, or the line to parse."""
    if value is None:
        return "value is null (a tombstone); expected a JSON object", b""
    stripped = value.strip()
    if not stripped:
        return "value is empty; expected a JSON object", b""
    if stripped[:1] != b"{":
        return f"expected a JSON object, got {stripped[:20]!r}", b""
    if stripped[-1:] != b"}":
        return f"value does not end with '}}' (truncated or not one JSON object): ...{stripped[-20:]!r}", b""
    try:
        stripped.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"value is not valid UTF-8: {exc}", b""
    if len(stripped) > 2 * max_depth and too_deep([stripped], max_depth):
        return f"value nests deeper than {max_depth} levels (JsonFormat(max_depth=...))", b""
    if b"\n" in stripped or b"\r" in stripped:
        # A record printed over several lines: line breaks are whitespace in JSON
        # and invalid inside strings, so checking strictly and then replacing them
        # keeps the record's meaning.
        try:
            parsed = orjson.loads(stripped)
        except orjson.JSONDecodeError as exc:
            return f"invalid JSON: {exc}", b""
        if not isinstance(parsed, dict):
            return "expected a JSON object", b""
        stripped = stripped.replace(b"\r", b" ").replace(b"\n", b" ")
    return None, stripped


_ARROW_ROW = re.compile(r" in row \d+")


def _arrow_message(exc: pa.ArrowInvalid) -> str:
    # Arrow numbers rows within the buffer it was given: meaningless to a user.
    return _ARROW_ROW.sub("", str(exc))
