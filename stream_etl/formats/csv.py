"""CSV records: one CSV row per record, parsed a batch at a time by Arrow's CSV reader.

The batch's values are joined with newlines and read in one call. Row *i* is
value *i* when no value holds a line break and Arrow returns exactly one row per
value: the reader runs with ``newlines_in_values=False``, so a line break always
ends a row (an unbalanced quote cannot swallow the next record) and Arrow skips
only empty lines, which lowers the count. Otherwise the values are screened and
bisected (:mod:`stream_etl.formats.splitting`); a value with a line break inside
(a quoted multi-line field) is parsed on its own, where it must make exactly one row.
"""

from __future__ import annotations

import csv as stdlib_csv
from collections.abc import Sequence

import pyarrow as pa
import pyarrow.csv as pa_csv

from stream_etl.dead_letters import Failure
from stream_etl.decode import Decoded, Format, _row_indices
from stream_etl.errors import ConfigurationError
from stream_etl.formats.splitting import combine, decode_failure, parse_or_bisect
from stream_etl.records import LINEAGE


class CsvFormat(Format):
    """One CSV row per record, without a header line in the records.

    Name the columns with ``schema`` (names and Arrow types: values are converted
    to them, a value that does not fit is dead-lettered), ``columns`` (names only:
    types are inferred per batch) or ``header`` (the header line, e.g.
    ``"id,user,amount"``: a record equal to it, as producers that stream a CSV file
    line by line send first, is dead-lettered as a header, not silently dropped).
    A row with the wrong number of fields is dead-lettered.
    """

    def __init__(
        self,
        schema: pa.Schema | None = None,
        *,
        columns: Sequence[str] | None = None,
        header: str | None = None,
        delimiter: str = ",",
        quote_char: str = '"',
        null_values: Sequence[str] = ("",),
    ) -> None:
        given = [x is not None for x in (schema, columns, header)]
        if sum(given) != 1:
            msg = "CsvFormat needs exactly one of schema=pa.schema(...), columns=[...] or header='a,b,c'"
            raise ConfigurationError(msg)
        self.header = header.encode() if header is not None else None
        if schema is not None:
            names = list(schema.names)
        elif columns is not None:
            names = list(columns)
        else:
            assert header is not None  # noqa: S101 - one of the three is given
            names = [n.strip() for n in next(stdlib_csv.reader([header], delimiter=delimiter, quotechar=quote_char))]
        if not names or len(set(names)) != len(names):
            msg = f"CSV column names must be present and unique, got {names}"
            raise ConfigurationError(msg)
        self.schema = schema
        self.names = names
        self._read = pa_csv.ReadOptions(column_names=names, use_threads=False, block_size=1 << 24)
        self._parse = pa_csv.ParseOptions(delimiter=delimiter, quote_char=quote_char, newlines_in_values=False)
        self._parse_quoted = pa_csv.ParseOptions(delimiter=delimiter, quote_char=quote_char, newlines_in_values=True)
        self._convert = pa_csv.ConvertOptions(
            column_types=dict(zip(schema.names, schema.types, strict=True)) if schema is not None else None,
            null_values=list(null_values),
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
        )

    @property
    def declares_schema(self) -> bool:
        return self.schema is not None

    def __repr__(self) -> str:
        return f"CsvFormat(columns={self.names!r}, typed={self.schema is not None})"

    def _parse_values(self, values: Sequence[bytes]) -> pa.Table:
        return pa_csv.read_csv(
            pa.py_buffer(b"\n".join(values)),
            read_options=self._read,
            parse_options=self._parse,
            convert_options=self._convert,
        )

    def decode(self, values: Sequence[bytes | None]) -> Decoded:
        n = len(values)
        if n == 0:
            return Decoded(None)
        try:
            buffer = b"\n".join(values)  # type: ignore[arg-type]  # None is caught below
        except TypeError:
            return self._decode_slowly(values)
        if buffer.count(b"\n") != n - 1 or b"\r" in buffer or (self.header is not None and self.header in buffer):
            return self._decode_slowly(values)
        try:
            table = self._parse_values(values)  # type: ignore[arg-type]
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            return self._decode_slowly(values)
        if table.num_rows != n:
            return self._decode_slowly(values)
        return Decoded(table.append_column(LINEAGE, _row_indices(n)))

    def _decode_slowly(self, values: Sequence[bytes | None]) -> Decoded:
        failures: list[Failure] = []
        rows: list[int] = []
        clean: list[bytes] = []
        multiline: list[tuple[int, bytes]] = []
        for row, value in enumerate(values):  # only for batches that hold a bad record
            problem = self._screen(value)
            if problem is not None:
                failures.append(decode_failure(row, problem))
                continue
            assert value is not None  # noqa: S101 - screened
            value = value.rstrip(b"\r\n")
            if b"\n" in value or b"\r" in value:
                multiline.append((row, value))  # a quoted line break: parsed on its own, never beside others
            else:
                rows.append(row)
                clean.append(value)
        parts = parse_or_bisect(rows, clean, self._parse_values, failures)
        for row, value in multiline:
            parts += parse_or_bisect([row], [value], self._parse_multiline, failures)
        parts.sort(key=lambda part: part[0][0])
        failures.sort(key=lambda f: f.row)
        return Decoded(combine(parts), failures)

    def _parse_multiline(self, values: Sequence[bytes]) -> pa.Table:
        return pa_csv.read_csv(
            pa.py_buffer(b"\n".join(values)),
            read_options=self._read,
            parse_options=self._parse_quoted,
            convert_options=self._convert,
        )

    def _screen(self, value: bytes | None) -> str | None:
        if value is None:
            return "value is null (a tombstone); expected a CSV row"
        if not value.strip():
            return "value is empty; expected a CSV row"
        if self.header is not None and value.rstrip(b"\r\n") == self.header:
            return "value is the CSV header line, not a data row"
        try:
            value.decode("utf-8")
        except UnicodeDecodeError as exc:
            return f"value is not valid UTF-8: {exc}"
        return None
