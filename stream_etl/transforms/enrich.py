"""Enrich: join each batch with a lookup table (Parquet, CSV, or Delta through its connector).

The lookup is loaded when the run starts (a failure there stops the run: the topology
cannot work without it) and reloaded every ``reload_every``; a failed reload keeps the
table it had and logs a warning. The join is a hash join in Arrow: ``how="left"`` keeps
records without a match (lookup columns null), ``"inner"`` filters them out. A key found
several times in the lookup repeats the record, once per match. Enrichment reflects the
lookup as it was when the batch was processed, so a replay after a reload may differ.
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Literal

import pyarrow as pa
import pyarrow.compute as pc

from stream_etl.context import RunContext
from stream_etl.errors import ConfigurationError
from stream_etl.storage import filesystem_for
from stream_etl.transforms.base import Step

log = logging.getLogger(__name__)


class Lookup(ABC):
    """A table to join batches with, read from storage."""

    @abstractmethod
    def load(self, ctx: RunContext) -> pa.Table:
        """Read the whole table now."""

    @abstractmethod
    def describe(self) -> str: ...


class FileLookup(Lookup):
    """Parquet or CSV files at ``uri`` (a file or a directory; local or ``s3://``)."""

    def __init__(self, uri: str, *, format: Literal["parquet", "csv"] = "parquet") -> None:  # noqa: A002
        if format not in ("parquet", "csv"):
            msg = f"lookup format must be 'parquet' or 'csv', got {format!r}"
            raise ConfigurationError(msg)
        self.uri, self.format = uri, format

    def load(self, ctx: RunContext) -> pa.Table:
        fs, path = filesystem_for(self.uri, ctx.settings)
        import pyarrow.dataset as ds  # ~10 ms: only for file lookups

        return ds.dataset(path, filesystem=fs, format=self.format).to_table()

    def describe(self) -> str:
        return f"{self.format} {self.uri}"


class Enrich(Step):
    """Join with a lookup table on key columns (see the module docstring)."""

    kind = "enrich"

    def __init__(
        self,
        lookup: Lookup,
        *,
        on: str | Sequence[str] | Mapping[str, str],
        how: Literal["left", "inner"] = "left",
        columns: Sequence[str] | None = None,
        reload_every: timedelta = timedelta(minutes=5),
    ) -> None:
        """``on`` names key columns present in both tables, or maps batch columns to lookup ones;
        ``columns`` picks the lookup's columns to add (default: all)."""
        super().__init__()
        if how not in ("left", "inner"):
            msg = f"how must be 'left' or 'inner', got {how!r}"
            raise ConfigurationError(msg)
        pairs = {on: on} if isinstance(on, str) else dict(on) if isinstance(on, Mapping) else {k: k for k in on}
        if not pairs:
            msg = "enrich needs at least one key column in on="
            raise ConfigurationError(msg)
        self.lookup, self.keys, self.how = lookup, pairs, how
        self.columns = list(columns) if columns is not None else None
        self.reload_s = reload_every.total_seconds()
        self._table: pa.Table | None = None
        self._loaded_at = 0.0
        self._ctx: RunContext | None = None

    def describe(self) -> str:
        return f"enrich from {self.lookup.describe()} on {', '.join(self.keys)} ({self.how})"

    def open(self, ctx: RunContext) -> None:
        self._ctx = ctx
        try:
            self._table = self._prepared(self.lookup.load(ctx))
        except (OSError, pa.ArrowException) as exc:
            msg = f"enrich {self.name!r}: cannot load the lookup {self.lookup.describe()}: {exc}"
            raise ConfigurationError(msg) from exc
        self._loaded_at = time.monotonic()

    def _prepared(self, table: pa.Table) -> pa.Table:
        missing = [c for c in [*self.keys.values(), *(self.columns or [])] if c not in table.column_names]
        if missing:
            msg = f"enrich {self.name!r}: the lookup has no column(s) {missing}; it has {table.column_names}"
            raise ConfigurationError(msg)
        wanted = [
            *self.keys.values(),
            *[c for c in (self.columns or table.column_names) if c not in self.keys.values()],
        ]
        return table.select(wanted)

    def _current(self) -> pa.Table:
        if self._table is None or self._ctx is None:
            msg = f"enrich {self.name!r} was not opened: the run loop opens steps before the first batch"
            raise ConfigurationError(msg)
        if time.monotonic() - self._loaded_at >= self.reload_s:
            self._loaded_at = time.monotonic()
            try:
                self._table = self._prepared(self.lookup.load(self._ctx))
            except (OSError, pa.ArrowException, ConfigurationError) as exc:
                log.warning(
                    "enrich %r: reloading %s failed (%s); keeping the previous table",
                    self.name,
                    self.lookup.describe(),
                    exc,
                )
        return self._table

    def apply(self, table: pa.Table) -> pa.Table:
        lookup = self._current()
        left, right = list(self.keys), list(self.keys.values())
        missing = [c for c in left if c not in table.column_names]
        if missing:
            msg = f"enrich {self.name!r}: no key column(s) {missing} in the batch"
            raise ConfigurationError(msg)
        for batch_key, lookup_key in self.keys.items():  # join keys must have one type
            wanted = table.schema.field(batch_key).type
            if not lookup.schema.field(lookup_key).type.equals(wanted):
                index = lookup.schema.get_field_index(lookup_key)
                lookup = lookup.set_column(index, lookup_key, pc.cast(lookup[lookup_key], wanted))
        # Join keys and row numbers only, then take the other columns: Arrow's hash join
        # refuses some column types (lists, structs) outside the keys.
        left_rows = table.select(left).append_column("__left", pa.array(range(table.num_rows), pa.int64()))
        right_rows = lookup.select(right).append_column("__right", pa.array(range(lookup.num_rows), pa.int64()))
        pairs = left_rows.join(
            right_rows,
            keys=left,
            right_keys=right,
            join_type="left outer" if self.how == "left" else "inner",
            use_threads=False,
        )
        out = table.take(pairs["__left"])
        matched = lookup.take(pairs["__right"])
        for name in lookup.column_names:
            if name in right:
                continue
            column = f"{name}_lookup" if name in out.column_names else name
            out = out.append_column(column, matched[name])
        return out
