"""Error thresholds: fail the job when too many records are dead-lettered.

Like Glue's ``stageThreshold`` and ``totalThreshold``: a limit is a count (an ``int``: at
most that many records in this run) or a fraction (a ``float`` below 1: at most that share
of the records read in this run, judged once ``MIN_RECORDS`` have been read). Per-step
limits count the records a step dead-lettered (decode failures are step ``decode``, a
sink's schema check is ``sink:<name>``); the total limit counts every dead-lettered record.
The run stops before committing the batch that crossed a limit, with a message that names
the step and the counts; records dead-lettered earlier stay committed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

from stream_etl.dead_letters import Failure
from stream_etl.errors import ConfigurationError, ErrorThresholdExceeded

Limit = int | float

#: Fractions are judged only once this many records were read.
MIN_RECORDS = 100


def check_limit(limit: Limit | None, what: str) -> Limit | None:
    if limit is None:
        return None
    valid = (isinstance(limit, int) and not isinstance(limit, bool) and limit >= 0) or (
        isinstance(limit, float) and 0.0 < limit < 1.0
    )
    if not valid:
        msg = f"{what} must be a count (int >= 0) or a fraction (0 < float < 1), got {limit!r}"
        raise ConfigurationError(msg)
    return limit


class ErrorThresholds:
    """Counts dead-lettered records per step over a run and enforces the limits."""

    def __init__(self, total: Limit | None = None, per_step: Mapping[str, Limit] | None = None) -> None:
        self.total = check_limit(total, "max_errors")
        self.per_step = {
            step: check_limit(limit, f"step_max_errors[{step!r}]") for step, limit in (per_step or {}).items()
        }
        self.seen = 0
        self.failed = 0
        self.by_step: Counter[str] = Counter()

    def add(self, records: int, failures: Sequence[Failure]) -> None:
        """Count one batch; raise :class:`ErrorThresholdExceeded` when a limit is crossed."""
        self.seen += records
        rows_by_step: dict[str, set[int]] = {}
        for failure in failures:
            rows_by_step.setdefault(failure.step, set()).add(failure.row)
        for step, rows in rows_by_step.items():
            self.by_step[step] += len(rows)
        self.failed += len({f.row for f in failures})
        for step, limit in self.per_step.items():
            self._check(limit, self.by_step[step], step)
        self._check(self.total, self.failed, None)

    def _check(self, limit: Limit | None, failed: int, step: str | None) -> None:
        if limit is None or failed == 0:
            return
        if isinstance(limit, int):
            crossed = failed > limit
            allowed = f"at most {limit}"
        else:
            crossed = self.seen >= MIN_RECORDS and failed > limit * self.seen
            allowed = f"at most {limit:.2%} of the records read"
        if crossed:
            where = f"step {step!r}" if step else "the topology"
            msg = (
                f"{where} dead-lettered {failed} of {self.seen} records read in this run, {allowed}: "
                "stopping before committing this batch. Look at the dead-letter table for the errors, "
                "fix the data or the topology, or raise the limit"
            )
            raise ErrorThresholdExceeded(msg, step=step, failed=failed, seen=self.seen)
