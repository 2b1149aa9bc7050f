"""Steps that shape columns: select, drop, rename, cast."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import pyarrow as pa
import pyarrow.compute as pc

from stream_etl.errors import ConfigurationError
from stream_etl.records import LINEAGE
from stream_etl.transforms.base import Step


def _missing(table: pa.Table, columns: Sequence[str], step: Step) -> None:
    absent = [c for c in columns if c not in table.column_names]
    if absent:
        have = [c for c in table.column_names if c != LINEAGE]
        msg = f"no column(s) {absent} in the batch; columns are {have}"
        raise step.mismatch(msg)


class Select(Step):
    """Keep only ``columns``, in that order."""

    kind = "select"

    def __init__(self, columns: Sequence[str]) -> None:
        super().__init__()
        if not columns:
            msg = "select needs at least one column"
            raise ConfigurationError(msg)
        self.columns = list(columns)

    def apply(self, table: pa.Table) -> pa.Table:
        _missing(table, self.columns, self)
        return table.select([*self.columns, LINEAGE])

    def describe(self) -> str:
        return f"select {', '.join(self.columns)}"


class Drop(Step):
    """Remove ``columns``; columns already absent are ignored."""

    kind = "drop"

    def __init__(self, columns: Sequence[str]) -> None:
        super().__init__()
        if LINEAGE in columns:
            msg = f"the lineage column {LINEAGE!r} cannot be dropped"
            raise ConfigurationError(msg)
        self.columns = list(columns)

    def apply(self, table: pa.Table) -> pa.Table:
        return table.drop_columns([c for c in self.columns if c in table.column_names])

    def describe(self) -> str:
        return f"drop {', '.join(self.columns)}"


class Rename(Step):
    """Rename columns by ``{old: new}``."""

    kind = "rename"

    def __init__(self, mapping: Mapping[str, str]) -> None:
        super().__init__()
        if LINEAGE in mapping or LINEAGE in mapping.values():
            msg = f"the lineage column {LINEAGE!r} cannot be renamed"
            raise ConfigurationError(msg)
        self.mapping = dict(mapping)

    def apply(self, table: pa.Table) -> pa.Table:
        _missing(table, list(self.mapping), self)
        return table.rename_columns([self.mapping.get(c, c) for c in table.column_names])

    def describe(self) -> str:
        return "rename " + ", ".join(f"{a} -> {b}" for a, b in self.mapping.items())


#: timestamp (naive, microseconds, as SQL's TIMESTAMP), timestamptz (UTC), timestamp[ms],
#: timestamp[ms, tz=Europe/Paris]
_TIMESTAMP = re.compile(r"(?i)timestamp(?:(?P<tz_alias>tz)|\[(?P<unit>s|ms|us|ns)(?:,\s*tz=(?P<tz>[^\]]+))?\])?")


def parse_type(spec: str | pa.DataType) -> pa.DataType:
    """An Arrow type from a type or an alias: ``"int64"``, ``"double"``, ``"string"``,
    ``"timestamp"`` (naive), ``"timestamptz"`` (UTC), ``"timestamp[ms, tz=UTC]"``, ``"decimal(10,2)"``."""
    if isinstance(spec, pa.DataType):
        return spec
    aliases = {
        "int": "int64",
        "integer": "int64",
        "long": "int64",
        "float": "float32",
        "boolean": "bool",
        "varchar": "string",
        "text": "string",
    }
    name = aliases.get(spec.lower().strip(), spec.lower().strip())
    timestamp = _TIMESTAMP.fullmatch(spec.strip())
    if timestamp is not None:
        unit = timestamp["unit"] or "us"
        zone = "UTC" if timestamp["tz_alias"] else timestamp["tz"]
        return pa.timestamp(unit, tz=zone)
    if name.startswith("decimal(") and name.endswith(")"):
        precision, scale = (int(x) for x in name[8:-1].split(","))
        return pa.decimal128(precision, scale)
    try:
        return pa.type_for_alias(name)
    except ValueError as exc:
        msg = f"unknown type {spec!r}; use an Arrow type or a name such as int64, double, string, timestamp"
        raise ConfigurationError(msg) from exc


class Cast(Step):
    """Cast columns to types: ``{"amount": "double", "ts": pa.timestamp("ms")}``.

    Casts are safe: a value that does not fit (overflow, truncation, an unparsable
    string) fails its row, which is dead-lettered.
    """

    kind = "cast"

    def __init__(self, types: Mapping[str, str | pa.DataType]) -> None:
        super().__init__()
        self.types = {column: parse_type(t) for column, t in types.items()}

    def apply(self, table: pa.Table) -> pa.Table:
        _missing(table, list(self.types), self)
        for column, type_ in self.types.items():
            index = table.schema.get_field_index(column)
            table = table.set_column(index, column, pc.cast(table[column], type_))
        return table

    def describe(self) -> str:
        return "cast " + ", ".join(f"{c} as {t}" for c, t in self.types.items())
