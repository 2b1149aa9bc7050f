"""Nested data: flatten structs, explode arrays, unbox JSON text, relationalize arrays of structs."""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

from stream_etl.errors import ConfigurationError
from stream_etl.json_reader import MAX_DEPTH, read_json, too_deep
from stream_etl.records import LINEAGE
from stream_etl.transforms.base import Step


def _check_column(table: pa.Table, column: str, step: Step) -> None:
    if column not in table.column_names:
        have = [c for c in table.column_names if c != LINEAGE]
        msg = f"no column {column!r} in the batch; columns are {have}"
        raise step.mismatch(msg)


def _column_or_nulls(table: pa.Table, column: str, step: Step) -> pa.ChunkedArray:
    """``column``; when a schema-less batch lacks it (an optional field), nulls."""
    if column not in table.column_names and not step.strict_columns:
        return pa.chunked_array([pa.nulls(table.num_rows)])
    _check_column(table, column, step)
    return table[column]


def flatten_table(
    table: pa.Table, separator: str, columns: Sequence[str] | None = None, step: Step | None = None
) -> pa.Table:
    """Struct columns (all, or ``columns``) replaced by one column per leaf field, recursively.

    A leaf of a null struct is null. Names join the path with ``separator``.
    """
    out_names: list[str] = []
    out_columns: list[pa.ChunkedArray] = []

    def walk(name: str, values: pa.ChunkedArray) -> None:
        if not pa.types.is_struct(values.type):
            out_names.append(name)
            out_columns.append(values)
            return
        # ChunkedArray.flatten merges each parent's validity into its children.
        for field, child in zip(values.type, values.flatten(), strict=True):
            walk(f"{name}{separator}{field.name}", child)

    for name in table.column_names:
        if name == LINEAGE or (columns is not None and name not in columns):
            out_names.append(name)
            out_columns.append(table[name])
        else:
            walk(name, table[name])
    duplicated = sorted({n for n in out_names if out_names.count(n) > 1})
    if duplicated:
        msg = f"flattening gives the column name(s) {duplicated} twice; choose another separator"
        raise step.mismatch(msg) if step is not None else ConfigurationError(msg)
    return pa.table(out_columns, names=out_names)


class Flatten(Step):
    """Nested struct columns become top-level columns: ``a: {b: 1}`` -> ``a_b = 1``.

    ``separator`` joins the path (``"_"`` by default; ``"."`` gives Glue's names). Lists are
    kept as they are (see :class:`Explode` and :class:`Relationalize`).
    """

    kind = "flatten"

    def __init__(self, *, separator: str = "_", columns: Sequence[str] | None = None) -> None:
        super().__init__()
        if not separator:
            msg = "flatten needs a non-empty separator"
            raise ConfigurationError(msg)
        self.separator = separator
        self.columns = list(columns) if columns is not None else None

    def apply(self, table: pa.Table) -> pa.Table:
        return flatten_table(table, self.separator, self.columns, self)

    def describe(self) -> str:
        return f"flatten with {self.separator!r}"


def explode_indices(values: pa.Array, *, keep_empty: bool) -> tuple[pa.Array, pa.Array, pa.Array]:
    """For a list array: the parent row of each output row, its element, and its index in the list.

    With ``keep_empty``, a null or empty list gives one row whose element and index are null.
    """
    flat = pc.list_flatten(values)
    parents = pc.list_parent_indices(values)
    index = pc.subtract(pa.array(range(len(parents)), pa.int64()), pc.take(_list_starts(values), parents))
    if keep_empty:
        lengths = pc.fill_null(pc.list_value_length(values), 0)
        empty = pc.indices_nonzero(pc.equal(lengths, 0))
        if len(empty):
            parents = pa.concat_arrays([parents.cast(pa.int64()), empty.cast(pa.int64())])
            flat = pa.concat_arrays([flat, pa.nulls(len(empty), flat.type)])
            index = pa.concat_arrays([index, pa.nulls(len(empty), pa.int64())])
            order = pc.sort_indices(parents)  # stable: elements keep their order
            parents, flat, index = parents.take(order), flat.take(order), index.take(order)
    return parents, flat, index


def _list_starts(values: pa.Array) -> pa.Array:
    """The flattened position of each list's first element (relative to the flattened array)."""
    lengths = pc.fill_null(pc.list_value_length(values), 0).cast(pa.int64())
    ends = pc.cumulative_sum(lengths)
    return pc.subtract(ends, lengths)


def _list_column(table: pa.Table, column: str, step: Step) -> pa.Array:
    values = _column_or_nulls(table, column, step).combine_chunks()
    if pa.types.is_null(values.type):  # inferred from a batch where it was always null
        return pa.nulls(len(values), pa.list_(pa.null()))
    if not (pa.types.is_list(values.type) or pa.types.is_large_list(values.type)):
        msg = f"column {column!r} is {values.type}, not a list"
        raise step.mismatch(msg)
    return values


class Explode(Step):
    """One row per element of a list column; the other columns repeat.

    Rows whose list is null or empty are dropped (counted as filtered), or with
    ``keep_empty=True`` kept once with a null element. ``index`` names an optional column
    holding the element's position in its list (0-based).
    """

    kind = "explode"

    def __init__(self, column: str, *, keep_empty: bool = False, index: str | None = None) -> None:
        super().__init__()
        self.column, self.keep_empty, self.index = column, keep_empty, index

    def apply(self, table: pa.Table) -> pa.Table:
        values = _list_column(table, self.column, self)
        parents, flat, index = explode_indices(values, keep_empty=self.keep_empty)
        out = table.take(parents)
        if self.column in out.column_names:
            out = out.set_column(out.schema.get_field_index(self.column), self.column, flat)
        else:
            out = out.append_column(self.column, flat)
        if self.index is not None:
            out = out.append_column(self.index, index)
        return out

    def describe(self) -> str:
        return f"explode {self.column}" + (" keeping empty" if self.keep_empty else "")


class Unbox(Step):
    """Parse a column of JSON text into a struct column (Glue's Unbox).

    With ``schema`` (an Arrow schema of the object's fields) the types are fixed; without
    it they are inferred per batch. Each value must be one JSON object; a row whose text is
    not (invalid JSON, a bare number, a value that does not fit the schema, text nested
    deeper than 1,000 levels, on which Arrow's reader would crash) is dead-lettered with
    this step's name. A null stays null. Arrow's reader is used through
    :mod:`stream_etl.json_reader`, which never lets an invalid array through.
    """

    kind = "unbox"

    def __init__(self, column: str, *, schema: pa.Schema | None = None) -> None:
        super().__init__()
        self.column, self.schema = column, schema
        self._options = pa_json.ParseOptions(
            explicit_schema=schema, unexpected_field_behavior="ignore" if schema is not None else "infer"
        )

    def apply(self, table: pa.Table) -> pa.Table:
        if self.column not in table.column_names and not self.strict_columns:
            return table  # an optional field absent from this batch: nothing to parse
        _check_column(table, self.column, self)
        text = table[self.column].combine_chunks()
        if pa.types.is_null(text.type):
            text = text.cast(pa.string())
        if not (pa.types.is_string(text.type) or pa.types.is_large_string(text.type)):
            msg = f"column {self.column!r} is {text.type}, not JSON text"
            raise self.mismatch(msg)
        parsed = self._parse(text)
        index = table.schema.get_field_index(self.column)
        return table.set_column(index, self.column, parsed)

    def _parse(self, text: pa.Array) -> pa.Array:
        valid = pc.is_valid(text)
        # Line breaks are only allowed between tokens in JSON: replace them so each value is one line.
        one_line = pc.replace_substring_regex(pc.fill_null(text, "{}"), r"[\r\n]", " ")
        if len(text) == 0:
            fields = list(self.schema) if self.schema is not None else []
            return pa.array([], pa.struct(fields))
        long = pc.greater(pc.binary_length(text), 2 * MAX_DEPTH)  # only these can nest that deep
        if pc.any(long).as_py() and too_deep(text.filter(long).cast(pa.binary()).to_pylist(), MAX_DEPTH):
            msg = f"column {self.column!r}: JSON text nests deeper than {MAX_DEPTH} levels"
            raise ValueError(msg)  # the runner bisects the batch down to the deep row(s)
        # Arrow's reader crashes the process on a top-level null (and fails on other scalars):
        # hand it objects only; the runner bisects the batch down to the other row(s).
        if not pc.all(pc.match_substring_regex(one_line, r"^\s*\{.*\}\s*$")).as_py():
            msg = f"column {self.column!r}: a value is not one JSON object"
            raise ValueError(msg)
        buffer = _join_lines(one_line)
        parsed = read_json(buffer, parse_options=self._options)
        if parsed.num_rows != len(text):
            msg = f"column {self.column!r}: {len(text)} values gave {parsed.num_rows} JSON objects"
            raise ValueError(msg)
        struct = pa.StructArray.from_arrays(
            [c.combine_chunks() for c in parsed.columns], fields=list(parsed.schema), mask=pc.invert(valid)
        )
        return struct

    def describe(self) -> str:
        return f"unbox {self.column}"


def _join_lines(text: pa.Array) -> pa.Buffer:
    """Values joined with newlines into one buffer, without a Python loop per value."""
    lists = pa.ListArray.from_arrays(pa.array([0, len(text)], pa.int32()), text.cast(pa.string()))
    joined = pc.binary_join(lists, "\n").cast(pa.binary())
    buffer: pa.Buffer = joined[0].as_buffer()
    return buffer


class Relationalize(Step):
    """The parent side of ``relationalize``: the array column leaves the parent table.

    The parent keeps ``key`` (the join key, already one of its columns); the child rows go
    to :class:`RelationalizeChildren`.
    """

    kind = "relationalize"

    def __init__(self, column: str, key: Sequence[str]) -> None:
        super().__init__()
        self.column, self.key = column, list(key)
        _check_key(column, self.key)

    def apply(self, table: pa.Table) -> pa.Table:
        for k in self.key:
            _column_or_nulls(table, k, self)
        if self.column not in table.column_names:
            _column_or_nulls(table, self.column, self)
            return table
        return table.drop_columns([self.column])

    def describe(self) -> str:
        return f"relationalize {self.column} (parent, key {', '.join(self.key)})"


def _check_key(column: str, key: list[str]) -> None:
    if not key:
        msg = f"relationalize({column!r}) needs key=: the parent column(s) that identify a record"
        raise ConfigurationError(msg)
    if column in key or LINEAGE in key:
        msg = f"relationalize({column!r}): the key {key} cannot be the array column or the lineage column"
        raise ConfigurationError(msg)


class RelationalizeChildren(Step):
    """The child side of ``relationalize``: one row per element of the array column.

    Columns: the parent's ``key`` columns (the join key back to the parent), ``index``
    (the element's position in the array: key + index is the child's primary key), then the
    element's fields flattened with ``separator`` (an element that is not a struct is one
    column named ``value``), each prefixed with ``prefix``. Null and empty arrays give no rows.
    """

    kind = "relationalize_children"

    def __init__(
        self, column: str, key: Sequence[str], *, index: str = "index", prefix: str = "", separator: str = "_"
    ) -> None:
        super().__init__()
        self.column, self.key, self.index = column, list(key), index
        self.prefix, self.separator = prefix, separator
        _check_key(column, self.key)

    def apply(self, table: pa.Table) -> pa.Table:
        values = _list_column(table, self.column, self)
        keys = [_column_or_nulls(table, k, self) for k in self.key]
        parents, flat, index = explode_indices(values, keep_empty=False)
        names = [*self.key, self.index]
        columns: list[pa.Array | pa.ChunkedArray] = [k.take(parents) for k in keys]
        columns.append(index)
        if pa.types.is_null(flat.type):
            pass  # the array column is absent or null throughout the batch: no elements, no fields
        elif pa.types.is_struct(flat.type):
            elements = flatten_table(pa.table({"e": flat}), self.separator, step=self)
            for name, child in zip(elements.column_names, elements.columns, strict=True):
                names.append(self.prefix + name[2:])
                columns.append(child)
        else:
            names.append(self.prefix + "value")
            columns.append(flat)
        names.append(LINEAGE)
        columns.append(table[LINEAGE].take(parents))
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            msg = f"child column name(s) {duplicated} clash; pass prefix= to relationalize"
            raise self.mismatch(msg)
        return pa.table(columns, names=names)

    def describe(self) -> str:
        return f"relationalize {self.column} (children, key {', '.join(self.key)}, {self.index})"
