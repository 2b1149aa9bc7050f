"""What a sink tells a data catalog: the engine's side of the control plane's catalog.

A :class:`~stream_etl.context.RunContext` may carry a :class:`TableCatalog`. Sinks call
it after a commit that created their table or changed its schema (or, for a sink with
Hive partitions, wrote a partition it had not written before), never per batch (the sink
only does a cheap schema-name check per commit). A catalog must not fail a run: the data
and positions are already committed when it is called, so sinks call it through
:func:`tell_catalog`, which logs its errors and carries on. ``stream_etl.control.hook``
implements it over the metadata store.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import pyarrow as pa

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TablePartition:
    """A partition a commit wrote: its values (in ``partition_keys`` order) and its location."""

    values: tuple[str, ...]
    location: str


@dataclass(frozen=True, slots=True)
class TableCommit:
    """A commit that created a table (``created``), changed its schema or added ``partitions``.

    ``location`` never holds credentials. ``partial_schema`` marks a schema that holds only
    the columns this writer has seen (a Kafka topic keeps no schema of its own): the catalog
    adds them to the registered schema instead of replacing it.
    """

    location: str
    format: str
    schema: pa.Schema
    partition_keys: Sequence[str] = field(default_factory=tuple)
    table_version: int | None = None
    created: bool = False
    app_id: str = ""
    partitions: Sequence[TablePartition] = field(default_factory=tuple)
    partial_schema: bool = False


class TableCatalog(Protocol):
    def table_committed(self, commit: TableCommit) -> None:
        """Register the table, or record its new schema version (and partitions)."""
        ...


def adds_columns(written: Collection[str], before: Collection[str] | None) -> bool:
    """Whether a commit writing columns ``written`` changed a table that had columns ``before``
    (sinks only ever add columns): a name check, cheap per commit."""
    return before is not None and not set(written) <= set(before)


def tell_catalog(catalog: TableCatalog, location: str, describe: Callable[[], TableCommit | None]) -> None:
    """Tell ``catalog`` the commit ``describe()`` returns (None: nothing to tell). Call it after
    the commit: a failure here (describing or telling) is logged and never fails the run."""
    try:
        commit = describe()
        if commit is not None:
            catalog.table_committed(commit)
    except Exception:  # the catalog is metadata: the data is committed whatever happens here
        log.warning("could not update the catalog for %s", location, exc_info=True)
