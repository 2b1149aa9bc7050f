"""Deterministic crash points for reliability tests: kill this worker at a named moment.

``STREAM_ETL_FAULT=<point>:<n>`` (read by the CLI only) makes the worker send itself
SIGKILL the n-th time it reaches ``point``. Points, in the order a batch meets them:

- ``batch_closed``: the fetch thread closed a batch (records consumed, nothing decoded)
- ``decoded``: the prepare thread decoded it
- ``transformed``: the steps ran on it
- ``before_commits``: dead letters and state are about to be written
- ``state_saved``: state snapshots are written, no sink committed yet
- ``secondaries_committed``: dead letters and secondary sinks committed, the primary not yet
- ``primary_committed``: the primary sink committed the batch

With no fault armed, :func:`reached` is a dict lookup.
"""

from __future__ import annotations

import os
import signal
import threading

from stream_etl.errors import ConfigurationError

POINTS = (
    "batch_closed",
    "decoded",
    "transformed",
    "before_commits",
    "state_saved",
    "secondaries_committed",
    "primary_committed",
)

_armed: dict[str, int] = {}
_lock = threading.Lock()


def arm(spec: str) -> None:
    """``"<point>:<n>"``: kill the process the n-th time ``point`` is reached."""
    point, _, count = spec.partition(":")
    if point not in POINTS or not count.isdigit() or int(count) < 1:
        msg = f"STREAM_ETL_FAULT={spec!r}: expected <point>:<n> with point one of {', '.join(POINTS)} and n >= 1"
        raise ConfigurationError(msg)
    _armed[point] = int(count)


def reached(point: str) -> None:
    if point not in _armed:
        return
    with _lock:
        _armed[point] -= 1
        if _armed[point] == 0:
            os.kill(os.getpid(), signal.SIGKILL)
