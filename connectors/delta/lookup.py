"""A Delta table as the lookup of an enrich step."""

from __future__ import annotations

from collections.abc import Mapping

import pyarrow as pa
from deltalake import DeltaTable

from connectors.delta.config import storage_options
from stream_etl.context import RunContext
from stream_etl.transforms.enrich import Lookup


class DeltaLookup(Lookup):
    """The latest version of the Delta table at ``uri`` (read whole at each (re)load)."""

    def __init__(self, uri: str, *, storage_options: Mapping[str, str] | None = None) -> None:
        self.uri, self.storage_options = uri, dict(storage_options or {})

    def load(self, ctx: RunContext) -> pa.Table:
        options = storage_options(self.uri, ctx.settings, self.storage_options)
        return DeltaTable(self.uri, storage_options=options or None).to_pyarrow_table()

    def describe(self) -> str:
        return f"delta {self.uri}"
