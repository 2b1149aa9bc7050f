"""Retrying transient failures with exponential backoff, within a time budget.

A sink that cannot be reached (S3 down, a network partition) or a table that other
writers keep committing to raises a :class:`~stream_etl.errors.TransientError`.
The run loop then waits 0.2 s, 0.4 s, 0.8 s ... (at most ``max_delay_s``) and tries
again, with a fresh snapshot, until ``timeout_s`` has passed since the first
failure; then the run stops with :class:`~stream_etl.errors.RetriesExhausted`,
which says what failed and which knob sets the budget
(``STREAM_ETL_SINK_RETRY_TIMEOUT_S``, :attr:`Settings.sink_retry_timeout_s`).

Retrying a commit can never write a batch twice: each attempt re-reads the sink's
stored positions and drops what is already committed (checkpoint.plan_commit), so
a commit that landed although its response was lost is not repeated.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from stream_etl.errors import RetriesExhausted, TransientError

log = logging.getLogger(__name__)
T = TypeVar("T")

#: The environment variable that sets the budget, named in error messages.
BUDGET_SETTING = "STREAM_ETL_SINK_RETRY_TIMEOUT_S"


class Backoff:
    """Waits between attempts at one operation; raises once the budget is spent."""

    def __init__(
        self,
        what: str,
        stop: threading.Event,
        *,
        timeout_s: float,
        first_delay_s: float = 0.2,
        max_delay_s: float = 10.0,
    ) -> None:
        self.what, self.stop = what, stop
        self.timeout_s, self.max_delay_s = timeout_s, max_delay_s
        self.delay = first_delay_s
        self.attempts = 0
        self._started = time.monotonic()

    def wait(self, exc: TransientError) -> None:
        """Sleep before the next attempt, or raise: ``exc`` itself when a stop was
        requested, :class:`RetriesExhausted` when the next attempt would start past the budget."""
        self.attempts += 1
        if self.stop.is_set():
            raise exc
        elapsed = time.monotonic() - self._started
        if elapsed + self.delay > self.timeout_s:
            msg = (
                f"{self.what} kept failing for {elapsed:.0f}s over {self.attempts} attempts, past the retry "
                f"budget of {self.timeout_s:g}s; last error: {exc}. Fix the cause, or give it more time with "
                f"{BUDGET_SETTING}. Every commit is atomic: a restart resumes from the stored positions."
            )
            raise RetriesExhausted(msg, what=self.what, attempts=self.attempts, elapsed_s=elapsed) from exc
        log.warning("%s failed (%s); retrying in %.1fs", self.what, exc, self.delay)
        self.stop.wait(self.delay)
        self.delay = min(self.delay * 2, self.max_delay_s)


def retry_transient(action: Callable[[], T], what: str, stop: threading.Event, timeout_s: float = 600.0) -> T:
    """Run ``action``, retrying transient errors with exponential backoff for up to ``timeout_s``."""
    backoff = Backoff(what, stop, timeout_s=timeout_s)
    while True:
        try:
            return action()
        except TransientError as exc:
            backoff.wait(exc)
