"""Personal data: mask, hash (SHA-256) or redact (regex) columns.

Values that are not strings are turned into their text first (``123`` -> ``"123"``);
the output is a string column. Nulls stay null.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

from stream_etl.errors import ConfigurationError
from stream_etl.records import LINEAGE
from stream_etl.transforms.base import Step

if TYPE_CHECKING:
    import duckdb  # imported when a Hash step first runs


def _columns(columns: Sequence[str], what: str) -> list[str]:
    if not columns:
        msg = f"{what} needs at least one column"
        raise ConfigurationError(msg)
    if LINEAGE in columns:
        msg = f"the lineage column {LINEAGE!r} cannot be changed by {what}"
        raise ConfigurationError(msg)
    return list(columns)


class _PerColumn(Step):
    """Replaces each named column with a string function of it."""

    def __init__(self, columns: Sequence[str]) -> None:
        super().__init__()
        self.columns = _columns(columns, self.kind)

    def apply(self, table: pa.Table) -> pa.Table:
        for column in self.columns:
            if column not in table.column_names:
                if self.strict_columns:
                    have = [c for c in table.column_names if c != LINEAGE]
                    msg = f"no column {column!r} in the batch; columns are {have}"
                    raise self.mismatch(msg)
                continue  # an optional field absent from this batch: nothing to protect
            text = table[column].combine_chunks()
            if not pa.types.is_string(text.type):
                try:
                    text = text.cast(pa.string())
                except pa.ArrowNotImplementedError as exc:
                    msg = f"column {column!r} is {text.type}, which has no text form"
                    raise self.mismatch(msg) from exc
            index = table.schema.get_field_index(column)
            table = table.set_column(index, column, self.transform(text))
        return table

    def transform(self, text: pa.Array) -> pa.Array:
        raise NotImplementedError

    def describe(self) -> str:
        return f"{self.kind} {', '.join(self.columns)}"


class Mask(_PerColumn):
    """Replace every character with ``char``, except the last ``keep_last`` ones.

    ``"4111111111111111"`` with ``keep_last=4`` -> ``"************1111"``. Lengths are in
    characters (code points), so unicode text is masked character by character.
    """

    kind = "mask"

    def __init__(self, columns: Sequence[str], *, char: str = "*", keep_last: int = 0) -> None:
        super().__init__(columns)
        if len(char) != 1 or keep_last < 0:
            msg = f"mask needs one character (got {char!r}) and keep_last >= 0 (got {keep_last})"
            raise ConfigurationError(msg)
        self.char, self.keep_last = char, keep_last

    def transform(self, text: pa.Array) -> pa.Array:
        length = pc.utf8_length(text)
        hidden = pc.max_element_wise(pc.subtract(length, self.keep_last), 0)
        stars = pc.binary_repeat(pa.scalar(self.char), hidden)
        if self.keep_last == 0:
            return pc.if_else(pc.is_valid(text), stars, pa.scalar(None, pa.string()))
        tail = pc.utf8_slice_codeunits(text, start=-self.keep_last)
        shown = pc.if_else(pc.less(length, self.keep_last), text, tail)
        return pc.binary_join_element_wise(stars, shown, "")


class Hash(_PerColumn):
    """Replace values with the hex SHA-256 of ``salt + value`` (UTF-8), computed by DuckDB.

    The same value and salt always give the same hash, so hashed columns still join and
    group. Keep the salt secret (pass it with ``--arg``), or the hash of a guessable value
    (a phone number) can be found by trying them all.
    """

    kind = "hash"

    def __init__(self, columns: Sequence[str], *, salt: str = "") -> None:
        super().__init__(columns)
        self.salt = salt
        self._local = threading.local()

    def transform(self, text: pa.Array) -> pa.Array:
        import duckdb

        connection: duckdb.DuckDBPyConnection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = duckdb.connect()
            self._local.connection = connection
        values = pa.table({"v": text})
        connection.register("hash_input", values)
        try:
            relation = connection.sql("SELECT sha256($salt || v) AS h FROM hash_input", params={"salt": self.salt})
            result = relation.to_arrow_table()
        finally:
            connection.unregister("hash_input")
        if result is None:
            msg = "DuckDB returned no result for sha256"
            raise RuntimeError(msg)
        return result["h"].combine_chunks().cast(pa.string())

    def describe(self) -> str:
        return f"hash (sha256) {', '.join(self.columns)}"


class Redact(_PerColumn):
    """Replace every match of ``pattern`` (RE2 syntax) with ``replacement``.

    ``Redact(["note"], pattern=r"[\\w.+-]+@[\\w-]+\\.[\\w.]+")`` hides e-mail addresses.
    """

    kind = "redact"

    def __init__(self, columns: Sequence[str], *, pattern: str, replacement: str = "[REDACTED]") -> None:
        super().__init__(columns)
        try:
            re.compile(pattern)
        except re.error as exc:
            msg = f"redact: invalid pattern {pattern!r}: {exc}"
            raise ConfigurationError(msg) from exc
        self.pattern, self.replacement = pattern, replacement

    def transform(self, text: pa.Array) -> pa.Array:
        try:
            return pc.replace_substring_regex(text, self.pattern, self.replacement)
        except pa.ArrowInvalid as exc:  # RE2 refuses what Python's re accepts (look-arounds)
            msg = f"redact {self.name!r}: pattern {self.pattern!r} is not RE2 syntax: {exc}"
            raise ConfigurationError(msg) from exc

    def describe(self) -> str:
        return f"redact /{self.pattern}/ in {', '.join(self.columns)}"
