"""What a sink tells a data catalog: the engine's side of the control plane's catalog.

A :class:`~stream_etl.context.RunContext` may carry a :class:`TableCatalog`. Sinks call
it after a commit that created their table or changed its schema, never per batch
(the sink only does a cheap schema-name check per commit). A catalog must not fail a
run: the data and positions are already committed when it is called, so sinks log
its errors and carry on. ``stream_etl.control.hook`` implements it over the metadata store.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import pyarrow as pa


@dataclass(frozen=True, slots=True)
class TableCommit:
    """A commit that created a table (``created``) or changed its schema."""

    location: str
    format: str
    schema: pa.Schema
    partition_keys: Sequence[str] = field(default_factory=tuple)
    table_version: int | None = None
    created: bool = False
    app_id: str = ""


class TableCatalog(Protocol):
    def table_committed(self, commit: TableCommit) -> None:
        """Register the table, or record its new schema version."""
        ...
