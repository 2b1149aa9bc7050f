"""User functions over whole Arrow tables."""

from __future__ import annotations

from collections.abc import Callable

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
