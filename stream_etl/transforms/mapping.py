"""Glue-style column shaping: apply_mapping, drop_null_fields, fill_missing_values.

``select_fields``, ``drop_fields`` and ``rename_field`` are the Glue names of
:class:`~stream_etl.transforms.columns.Select`, ``Drop`` and ``Rename`` (see
:class:`~stream_etl.topology.Stream`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from stream_etl.errors import ConfigurationError
from stream_etl.records import LINEAGE
from stream_etl.transforms.base import Step
from stream_etl.transforms.columns import parse_type

MappingSpec = tuple[str, "str | pa.DataType", str, "str | pa.DataType"]


def field_path(table: pa.Table, path: Sequence[str]) -> pa.ChunkedArray | None:
    """The values at ``path`` (``["a", "b"]`` is field ``b`` of struct column ``a``), or None if absent.

    A null parent struct gives a null value."""
    if path[0] not in table.column_names:
        return None
    values = table[path[0]]
    for name in path[1:]:
        if not pa.types.is_struct(values.type) or values.type.get_field_index(name) < 0:
            return None
        values = pc.struct_field(values, [name])
    return values


class ApplyMapping(Step):
    """Rename, cast and project in one step, like Glue's ApplyMapping.

    ``mappings`` is a list of ``(source path, source type, target name, target type)``.
    A source path reaches into structs with dots (``"customer.address.city"``). The value is
    cast to ``target type`` from whatever type the batch has (inferred JSON types drift: an
    ISO-8601 string may arrive as a timestamp), through ``source type`` when there is no
    direct cast; a value that does not fit fails its row, which is dead-lettered. The output has
    exactly the target columns, in the order given (plus the lineage column). A source path
    the batch lacks is a configuration error when the format declares a schema, and a column
    of nulls otherwise (an optional JSON field absent from a whole batch).
    """

    kind = "apply_mapping"

    def __init__(self, mappings: Sequence[Sequence[Any]]) -> None:
        super().__init__()
        if not mappings:
            msg = "apply_mapping needs at least one (source path, source type, target name, target type)"
            raise ConfigurationError(msg)
        self.mappings: list[tuple[list[str], pa.DataType, str, pa.DataType]] = []
        for spec in mappings:
            if len(spec) != 4:
                msg = f"apply_mapping entry {spec!r} must be (source path, source type, target name, target type)"
                raise ConfigurationError(msg)
            source, source_type, target, target_type = spec
            if not isinstance(source, str) or not source or not isinstance(target, str) or not target:
                msg = f"apply_mapping entry {spec!r}: source path and target name must be non-empty strings"
                raise ConfigurationError(msg)
            self.mappings.append((source.split("."), parse_type(source_type), target, parse_type(target_type)))
        targets = [m[2] for m in self.mappings]
        duplicated = sorted({t for t in targets if targets.count(t) > 1})
        if duplicated or LINEAGE in targets:
            msg = f"apply_mapping: target names {duplicated or [LINEAGE]} are used twice or reserved"
            raise ConfigurationError(msg)

    def apply(self, table: pa.Table) -> pa.Table:
        columns, names = [], []
        for path, source_type, target, target_type in self.mappings:
            values = field_path(table, path)
            if values is None:
                if self.strict_columns:
                    have = [c for c in table.column_names if c != LINEAGE]
                    msg = f"no field {'.'.join(path)!r} in the batch; columns are {have}"
                    raise self.mismatch(msg)
                values = pa.nulls(table.num_rows, target_type)
            try:
                cast = pc.cast(values, target_type)
            except pa.ArrowNotImplementedError:  # no direct cast: go through the source type
                try:
                    cast = pc.cast(pc.cast(values, source_type), target_type)
                except pa.ArrowNotImplementedError as exc:
                    msg = f"field {'.'.join(path)!r} is {values.type}: {exc}"
                    raise self.mismatch(msg) from exc
            columns.append(cast)
            names.append(target)
        return pa.table([*columns, table[LINEAGE]], names=[*names, LINEAGE])

    def describe(self) -> str:
        return "apply_mapping " + ", ".join(f"{'.'.join(p)} -> {t}:{tt}" for p, _, t, tt in self.mappings)


def _all_null(values: pa.ChunkedArray) -> bool:
    return bool(values.null_count == len(values) or pa.types.is_null(values.type))


class DropNullFields(Step):
    """Drop the columns whose values are null in every row of the batch (Glue's DropNullFields).

    Decided per batch: a column null throughout one batch is absent from that batch's
    output and present in the next one that has a value (a Delta sink with
    ``schema_mode="merge"`` keeps the column; its rows read as null). Struct fields are
    dropped the same way, recursively; an empty batch is returned unchanged. ``columns``
    limits the check to those columns.
    """

    kind = "drop_null_fields"

    def __init__(self, columns: Sequence[str] | None = None) -> None:
        super().__init__()
        self.columns = list(columns) if columns is not None else None

    def apply(self, table: pa.Table) -> pa.Table:
        if table.num_rows == 0:
            return table
        candidates = self.columns if self.columns is not None else table.column_names
        for name in [c for c in candidates if c in table.column_names and c != LINEAGE]:
            values = table[name]
            if _all_null(values):
                table = table.drop_columns([name])
            elif pa.types.is_struct(values.type):
                pruned = _prune_struct(values.combine_chunks())
                if pruned is None:
                    table = table.drop_columns([name])
                else:
                    table = table.set_column(table.schema.get_field_index(name), name, pruned)
        return table

    def describe(self) -> str:
        return "drop_null_fields" + (f" of {', '.join(self.columns)}" if self.columns else "")


def _prune_struct(values: pa.StructArray) -> pa.Array | None:
    """The struct without its all-null fields; None when no field is left."""
    fields, arrays = [], []
    for i, field in enumerate(values.type):
        child = values.field(i)
        if child.null_count == len(child) or pa.types.is_null(child.type):
            continue
        if pa.types.is_struct(child.type):
            pruned = _prune_struct(child)
            if pruned is None:
                continue
            child = pruned
        fields.append(pa.field(field.name, child.type, field.nullable))
        arrays.append(child)
    if not fields:
        return None
    return pa.StructArray.from_arrays(arrays, fields=fields, mask=values.is_null())


class FillMissingValues(Step):
    """Replace nulls with a constant per column: ``{"country": "unknown", "qty": 0}``.

    The constant is cast to the column's type (a constant that does not fit the type is
    a configuration error). A column the batch lacks is added, filled with the constant
    (an optional JSON field absent from a whole batch).
    """

    kind = "fill_missing_values"

    def __init__(self, values: Mapping[str, Any]) -> None:
        super().__init__()
        if not values:
            msg = "fill_missing_values needs {column: value}"
            raise ConfigurationError(msg)
        if LINEAGE in values:
            msg = f"the lineage column {LINEAGE!r} cannot be filled"
            raise ConfigurationError(msg)
        self.values = dict(values)

    def apply(self, table: pa.Table) -> pa.Table:
        for column, value in self.values.items():
            if column not in table.column_names:
                table = table.append_column(column, pa.repeat(pa.scalar(value), table.num_rows))
                continue
            values = table[column]
            try:
                constant = pa.scalar(value).cast(values.type) if not pa.types.is_null(values.type) else pa.scalar(value)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
                msg = f"{value!r} does not fit column {column!r} of type {values.type}: {exc}"
                raise self.mismatch(msg) from exc
            if pa.types.is_null(values.type):
                filled: pa.Array | pa.ChunkedArray = pa.repeat(constant, table.num_rows)
            else:
                filled = pc.fill_null(values, constant)
            table = table.set_column(table.schema.get_field_index(column), column, filled)
        return table

    def describe(self) -> str:
        return "fill_missing_values " + ", ".join(f"{c}={v!r}" for c, v in self.values.items())
