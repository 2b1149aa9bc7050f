"""resolve_choice: give a column of drifting type one stable shape (Glue's ResolveChoice).

"Mixed types" here means what stream-etl can actually decode:

- **between batches**: without an explicit schema, ``JsonFormat`` infers types per batch,
  so a field sent as ``42`` by one producer and ``"42"`` by another arrives as ``int64``
  in one batch and ``string`` in the next (within one batch the first type wins and
  records that do not fit are dead-lettered by decode as type drift);
- **within a batch**: a union column (formats that decode unions) holds values of several
  types, row by row;
- a column declared or unboxed as a string that carries numbers as text.

Each value has a *kind*: ``int`` (any integer type), ``double`` (floating point and
decimal), ``boolean``, ``string``, ``timestamp``, ``date``, ``struct``, ``list``, ``binary``
(other types: their Arrow name). Actions, per column:

- ``cast:<type>``: every value cast to ``<type>`` (strings are parsed); a value that does not
  fit fails its row, which is dead-lettered. A column of a type Arrow cannot cast at all (a
  list to a string) is a mismatch (see :meth:`Step.mismatch`).
- ``project:<type>``: values whose kind is ``<type>``'s kind are kept (cast to ``<type>``),
  the others become null. The output is always ``<type>``.
- ``make_cols``: one column ``<column>_<kind>`` per kind present in the batch, null where
  the value has another kind; the original column is removed.
- ``make_struct``: the column becomes a struct with one field per kind present.

``make_cols`` and ``make_struct`` give only the kinds seen in the batch: a Delta sink in
``merge`` mode adds the others when they appear. Use ``cast`` or ``project`` for a fixed type.
"""

from __future__ import annotations

from collections.abc import Mapping

import pyarrow as pa
import pyarrow.compute as pc

from stream_etl.errors import ConfigurationError
from stream_etl.records import LINEAGE
from stream_etl.transforms.base import Step
from stream_etl.transforms.columns import parse_type


def kind_of(type_: pa.DataType) -> str:
    """The kind of a value of ``type_`` (see the module docstring)."""
    checks = [
        (pa.types.is_integer, "int"),
        (lambda t: pa.types.is_floating(t) or pa.types.is_decimal(t), "double"),
        (pa.types.is_boolean, "boolean"),
        (lambda t: pa.types.is_string(t) or pa.types.is_large_string(t), "string"),
        (pa.types.is_timestamp, "timestamp"),
        (pa.types.is_date, "date"),
        (pa.types.is_struct, "struct"),
        (lambda t: pa.types.is_list(t) or pa.types.is_large_list(t), "list"),
        (lambda t: pa.types.is_binary(t) or pa.types.is_large_binary(t), "binary"),
    ]
    for check, kind in checks:
        if check(type_):
            return kind
    return str(type_)


def split_kinds(values: pa.Array) -> dict[str, pa.Array]:
    """Values by kind: each array as long as ``values``, null where the value is of another kind.

    A plain column has one kind (a null column has none); a union column one per member type.
    """
    if pa.types.is_null(values.type):
        return {}
    if not pa.types.is_union(values.type):
        return {kind_of(values.type): values}
    union: pa.UnionArray = values
    codes = union.type_codes
    dense = values.type.mode == "dense"
    parts: dict[str, pa.Array] = {}
    for i, field in enumerate(values.type):
        code = values.type.type_codes[i]
        child = union.field(i)
        mine = pc.equal(codes, pa.scalar(code, pa.int8()))
        if dense:
            child = child.take(pc.if_else(mine, union.offsets, pa.scalar(0, pa.int32())))
        picked = pc.if_else(mine, child, pa.nulls(len(values), child.type))
        kind = kind_of(field.type)
        parts[kind] = pc.coalesce(parts[kind], picked.cast(parts[kind].type)) if kind in parts else picked
    return parts


_ACTIONS = ("cast", "project", "make_cols", "make_struct")


class ResolveChoice(Step):
    """Resolve columns of mixed type: ``{"price": "cast:double", "code": "make_cols"}``."""

    kind = "resolve_choice"

    def __init__(self, specs: Mapping[str, str]) -> None:
        super().__init__()
        if not specs:
            msg = 'resolve_choice needs {column: action}, e.g. {"price": "cast:double"}'
            raise ConfigurationError(msg)
        self.specs: dict[str, tuple[str, pa.DataType | None]] = {}
        for column, spec in specs.items():
            action, _, type_name = spec.partition(":")
            if action not in _ACTIONS or (action in ("cast", "project")) != bool(type_name):
                msg = (
                    f"resolve_choice[{column!r}] = {spec!r}: use cast:<type>, project:<type>, make_cols or make_struct"
                )
                raise ConfigurationError(msg)
            if column == LINEAGE:
                msg = f"the lineage column {LINEAGE!r} has one type"
                raise ConfigurationError(msg)
            self.specs[column] = (action, parse_type(type_name) if type_name else None)

    def apply(self, table: pa.Table) -> pa.Table:
        for column, (action, target) in self.specs.items():
            if column not in table.column_names:
                if self.strict_columns:
                    have = [c for c in table.column_names if c != LINEAGE]
                    msg = f"no column {column!r} in the batch; columns are {have}"
                    raise self.mismatch(msg)
                if target is None:
                    continue  # make_cols / make_struct of an absent column: nothing to add
                table = table.append_column(column, pa.nulls(table.num_rows, target))
            values = table[column].combine_chunks()
            index = table.schema.get_field_index(column)
            if action == "cast":
                assert target is not None  # noqa: S101 - checked in __init__
                try:
                    cast = _cast(values, target)
                except pa.ArrowNotImplementedError as exc:  # e.g. a list to a string: no value can fit
                    msg = f"column {column!r} is {values.type}, which cannot be cast to {target}"
                    raise self.mismatch(msg) from exc
                table = table.set_column(index, column, cast)
            elif action == "project":
                assert target is not None  # noqa: S101 - checked in __init__
                wanted = split_kinds(values).get(kind_of(target))
                projected = wanted.cast(target) if wanted is not None else pa.nulls(len(values), target)
                table = table.set_column(index, column, projected)
            else:
                parts = split_kinds(values)
                table = table.remove_column(index)
                if action == "make_cols":
                    for offset, (kind, part) in enumerate(sorted(parts.items())):
                        table = table.add_column(index + offset, f"{column}_{kind}", part)
                elif parts:
                    kinds = sorted(parts)
                    struct = pa.StructArray.from_arrays([parts[k] for k in kinds], names=kinds)
                    table = table.add_column(index, column, struct)
        return table

    def describe(self) -> str:
        return "resolve_choice " + ", ".join(
            f"{c}: {a}" + (f":{t}" if t is not None else "") for c, (a, t) in self.specs.items()
        )


def _cast(values: pa.Array, target: pa.DataType) -> pa.Array:
    parts = split_kinds(values)
    if not parts:
        return pa.nulls(len(values), target)
    result = None
    for part in parts.values():
        cast = part.cast(target)
        result = cast if result is None else pc.coalesce(result, cast)
    return result
