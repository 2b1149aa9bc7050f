"""The step interface and the runner that narrows a failing step down to its bad rows.

A step maps a whole Arrow table to a table. Tables carry the lineage column
(:data:`stream_etl.records.LINEAGE`) and steps keep it, so every output row can be
traced to its source record. When a row-local step raises on a batch, the runner
splits the batch in halves until it finds the rows that fail: those are
dead-lettered with the step's name and the error, the rest go on.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import pyarrow as pa

from stream_etl.context import RunContext
from stream_etl.dead_letters import Failure
from stream_etl.errors import ConfigurationError, RowsRejected, TerminalError
from stream_etl.records import LINEAGE

#: Below this many rows a failing range is tried row by row instead of halved.
_ROW_BY_ROW = 4


class Step(ABC):
    """A named transformation of whole Arrow tables.

    ``row_local`` steps compute each output row from one input row, so a failure
    can be narrowed down to rows by bisecting the batch. Subclasses set ``kind``
    (used for default names) and implement :meth:`apply`.
    """

    kind: ClassVar[str] = "step"
    row_local: ClassVar[bool] = True

    def __init__(self) -> None:
        self.name = ""
        #: Set by the topology: True when the source format declares a schema, so a
        #: column a step needs and the batch lacks is a mistake, not an absent field.
        self.strict_columns = True

    def open(self, ctx: RunContext) -> None:  # noqa: B027 - optional hook
        """Called once before the first batch (load lookups, connect): fail here, fast."""

    @abstractmethod
    def apply(self, table: pa.Table) -> pa.Table:
        """Transform ``table``; keep the lineage column."""

    def mismatch(self, message: str) -> ConfigurationError | RowsRejected:
        """The error for a batch whose columns do not fit this step (a column absent or of another type).

        When the format declares a schema this is a mistake in the topology: a
        :class:`ConfigurationError` that stops the job. Without one, types and columns are
        inferred per batch and drift with the data: :class:`RowsRejected` dead-letters the
        batch's rows with ``message`` and the stream goes on (``max_errors`` bounds it).
        """
        text = f"step {self.name!r}: {message}"
        return ConfigurationError(text) if self.strict_columns else RowsRejected(text)

    def describe(self) -> str:
        """One line for logs and ``preview``."""
        return self.kind

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}: {self.describe()}>"


def run_step(step: Step, table: pa.Table, failures: list[Failure]) -> pa.Table | None:
    """Apply ``step``; rows it fails on are appended to ``failures``.

    Returns ``None`` when no row survived and the output schema is unknown.
    Terminal errors (bad configuration, a broken step) are not per-row and propagate.
    """
    try:
        return _checked(step, table)
    except TerminalError:
        raise
    except RowsRejected as exc:
        if exc.rejected is not None:  # some rows fail, each with its reason; the rest go on
            failures.extend(Failure(row, step.name, type(exc).__name__, why) for row, why in exc.rejected.items())
            kept: pa.Table | None = exc.kept
            return kept
        failures.extend(Failure.of(row, step.name, exc) for row in table[LINEAGE].to_pylist())
        return None
    except Exception:
        if not step.row_local or table.num_rows == 0:
            raise
        return _bisect(step, table, failures)


def _checked(step: Step, table: pa.Table) -> pa.Table:
    out = step.apply(table)
    if LINEAGE not in out.column_names:
        msg = (
            f"step {step.name!r} dropped the lineage column {LINEAGE!r}; "
            "a step must keep it so rows can be traced to their source records"
        )
        raise ConfigurationError(msg)
    return out


def _bisect(step: Step, table: pa.Table, failures: list[Failure]) -> pa.Table | None:
    n = table.num_rows
    if n <= _ROW_BY_ROW:
        outputs = []
        for i in range(n):
            row = table.slice(i, 1)
            try:
                outputs.append(_checked(step, row))
            except TerminalError:
                raise
            except Exception as exc:
                failures.append(Failure.of(row[LINEAGE][0].as_py(), step.name, exc))
        return _concat(outputs)
    half = n // 2
    parts = []
    for part in (table.slice(0, half), table.slice(half)):
        try:
            parts.append(_checked(step, part))
        except TerminalError:
            raise
        except Exception:
            parts.append(_bisect(step, part, failures))
    return _concat([p for p in parts if p is not None])


def _concat(tables: list[pa.Table]) -> pa.Table | None:
    if not tables:
        return None
    if len(tables) == 1:
        return tables[0]
    return pa.concat_tables(tables, promote_options="permissive")
