"""Errors raised by stream-etl.

Every error derives from :class:`StreamEtlError`. Whether retrying can help is a
type, not a message: an error is also a :class:`TransientError` (retry with
backoff) or a :class:`TerminalError` (stop and tell the user), so callers decide
with ``isinstance``::

    StreamEtlError
    ├── ConfigurationError            (terminal) bad topology, settings or arguments
    │   └── TopologyLoadError         (terminal) module path or attribute not found
    ├── ErrorThresholdExceeded        (terminal) more records failed than the topology allows
    ├── SourceError
    │   ├── SourceUnavailable         (transient) broker unreachable, fetch failed
    │   ├── SourceMissing             (terminal) topic/stream does not exist
    │   └── SchemaRegistryUnavailable (transient) the schema registry does not answer
    ├── SinkError
    │   ├── SinkUnavailable           (transient) object store unreachable, I/O error
    │   ├── PositionConflict          (transient) another writer moved the stored
    │   │                                         positions: re-read them and re-seek
    │   └── SinkRejected              (terminal) the table refuses the data
    ├── RecordError                   one record cannot be processed: it is
    │   ├── DecodeError               dead-lettered, never raised to the user
    │   ├── StepError
    │   └── RowsRejected              every row given fails for the same reason
    └── ServiceError                  (terminal) the local dev stack failed

Errors carry their context as attributes (``step``, ``stream``, ``partition``,
``positions``, ``table_uri``, ``table_version``) so logs and dead-letter rows can
use them without parsing messages.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class StreamEtlError(Exception):
    """Root of every error raised by stream-etl."""


class TransientError(StreamEtlError):
    """Retrying after a backoff can succeed."""


class TerminalError(StreamEtlError):
    """Retrying cannot help; the user has to change something."""


class ConfigurationError(TerminalError):
    """Bad configuration: the message says what to fix."""


class TopologyLoadError(ConfigurationError):
    """A topology module or attribute could not be loaded."""


class ErrorThresholdExceeded(TerminalError):
    """Too many records were dead-lettered (Glue's stageThreshold / totalThreshold)."""

    def __init__(self, message: str, *, step: str | None, failed: int, seen: int) -> None:
        super().__init__(message)
        self.step, self.failed, self.seen = step, failed, seen


class SourceError(StreamEtlError):
    """Raised by a source; ``stream`` names the topic or stream."""

    def __init__(self, message: str, *, stream: str | None = None) -> None:
        super().__init__(message)
        self.stream = stream


class SourceUnavailable(SourceError, TransientError):
    """The source system cannot be reached right now."""


class SourceMissing(SourceError, TerminalError):
    """The topic or stream does not exist."""


class SchemaRegistryUnavailable(SourceError, TransientError):
    """The schema registry that resolves record schemas cannot be reached right now."""


class SinkError(StreamEtlError):
    """Raised by a sink; carries the table URI and, when known, its version."""

    def __init__(
        self,
        message: str,
        *,
        table_uri: str | None = None,
        table_version: int | None = None,
        positions: Mapping[Any, int] | None = None,
    ) -> None:
        super().__init__(message)
        self.table_uri = table_uri
        self.table_version = table_version
        self.positions = dict(positions or {})


class SinkUnavailable(SinkError, TransientError):
    """The sink's storage cannot be reached or failed an I/O call."""


class PositionConflict(SinkError, TransientError):
    """Another writer committed positions for a partition in this batch.

    The batch must be dropped, the stored positions re-read and the source
    re-seeked to them; nothing in the batch was committed.
    """


class SinkRejected(SinkError, TerminalError):
    """The sink refused the data for a reason retrying cannot fix."""


class RecordError(StreamEtlError):
    """A single record failed; the run loop dead-letters it."""


class DecodeError(RecordError):
    """A raw value could not be decoded."""


class StepError(RecordError):
    """A topology step failed on a record."""

    def __init__(self, message: str, *, step: str) -> None:
        super().__init__(message)
        self.step = step


class RowsRejected(RecordError):
    """Rows of the input fail, found without bisecting.

    Without ``rejected``, every row fails for the same reason (a type-level
    mismatch). With it, only the rows it names (lineage value -> reason) fail and
    ``kept`` is the step's output for the others: a step that finds its failing
    rows with a columnar mask (a sink's schema check) reports them this way.
    """

    def __init__(self, message: str, *, rejected: Mapping[int, str] | None = None, kept: Any = None) -> None:
        super().__init__(message)
        self.rejected = dict(rejected) if rejected is not None else None
        self.kept = kept


class ServiceError(TerminalError):
    """A local service of the dev stack could not be started or reached."""
