"""User functions over whole Arrow tables."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pyarrow as pa

from stream_etl.errors import ConfigurationError
from stream_etl.records import LINEAGE
from stream_etl.transforms.base import Step

TableFunction = Callable[[pa.Table], pa.Table]


class MapBatches(Step):
    """Apply ``fn`` to each batch as an Arrow table.

    ``fn`` sees the batch without the lineage column. If it returns as many rows as
    it was given, row *i* of the output is taken to come from row *i* of the input.
    A function that changes the number of rows must keep the lineage column: pass
    ``with_lineage=True`` to receive it (filtering or sorting with Arrow keeps it).
    A function that raises on a batch is retried on halves of it until the failing
    rows are found; only those are dead-lettered.
    """

    kind = "map_batches"

    def __init__(self, fn: TableFunction, *, with_lineage: bool = False) -> None:
        super().__init__()
        if not callable(fn):
            msg = f"map_batches needs a function, got {type(fn).__name__}"
            raise ConfigurationError(msg)
        self.fn = fn
        self.with_lineage = with_lineage

    def apply(self, table: pa.Table) -> pa.Table:
        given = table if self.with_lineage else table.drop_columns([LINEAGE])
        out = self.fn(given)
        if not isinstance(out, pa.Table):
            msg = f"map_batches {self.name!r}: the function returned {type(out).__name__}, not a pyarrow.Table"
            raise ConfigurationError(msg)
        if LINEAGE in out.column_names:
            return out
        if out.num_rows != table.num_rows:
            msg = (
                f"map_batches {self.name!r} changed the number of rows ({table.num_rows} -> "
                f"{out.num_rows}) without keeping the lineage column; pass with_lineage=True "
                f"and keep column {LINEAGE!r}"
            )
            raise ConfigurationError(msg)
        return out.append_column(LINEAGE, table[LINEAGE])

    def describe(self) -> str:
        return f"map_batches {getattr(self.fn, '__name__', repr(self.fn))}"


RecordFunction = Callable[[dict[str, Any]], "dict[str, Any] | None"]


class Map(Step):
    """Apply ``fn`` to each record as a ``dict``: the per-record escape hatch. **Slow.**

    This is the one step that runs Python per record (about 1 µs of overhead per record
    plus ``fn`` itself, so 10-100x slower than a columnar step): prefer ``derive``,
    ``sql`` or ``map_batches``. ``fn`` returns the new record, or ``None`` to filter it
    out. Output types are inferred per batch unless ``schema`` is given (then a value
    that does not fit fails its record). A record on which ``fn`` raises is
    dead-lettered with this step's name; the others go on.
    """

    kind = "map"

    def __init__(self, fn: RecordFunction, *, schema: pa.Schema | None = None) -> None:
        super().__init__()
        if not callable(fn):
            msg = f"map needs a function, got {type(fn).__name__}"
            raise ConfigurationError(msg)
        self.fn, self.schema = fn, schema

    def apply(self, table: pa.Table) -> pa.Table:
        records = table.drop_columns([LINEAGE]).to_pylist()
        lineage = table[LINEAGE].to_pylist()
        out: list[dict[str, Any]] = []
        kept: list[int] = []
        for row, record in zip(lineage, records, strict=True):  # the documented per-record path
            result = self.fn(record)
            if result is None:
                continue
            if not isinstance(result, dict):
                msg = f"map {self.name!r}: the function returned {type(result).__name__}, not a dict or None"
                raise TypeError(msg)
            out.append(result)
            kept.append(row)
        if self.schema is not None:
            mapped = pa.Table.from_pylist(out, schema=self.schema)
        elif out:
            mapped = pa.Table.from_pylist(out)
        else:  # no record came out and the output's columns are unknown: none but the lineage
            mapped = pa.table({})
        return mapped.append_column(LINEAGE, pa.array(kept, pa.int32()))

    def describe(self) -> str:
        return f"map {getattr(self.fn, '__name__', repr(self.fn))}"
