"""A pipeline stage: a thread that hands its results to the next stage through a bounded queue.

The fetch thread and the prepare thread are stages. A stage's exception is kept and
raised in whichever thread takes from it next, so a failure anywhere stops the run.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")

#: Longest a stage blocks at once, so stop requests and staleness are seen quickly.
WAIT_S = 0.1


def name_os_thread(name: str) -> None:
    """Show the calling thread as ``name`` in top -H, ps and /proc (Linux; a no-op elsewhere)."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(15, name.encode()[:15], 0, 0, 0)  # PR_SET_NAME
    except (OSError, AttributeError):
        pass


class Stage(threading.Thread, Generic[T]):
    """A daemon thread with an output queue of ``capacity`` items (backpressure when full)."""

    def __init__(self, name: str, capacity: int) -> None:
        super().__init__(name=name, daemon=True)
        self.queue: queue.Queue[T] = queue.Queue(maxsize=capacity)
        self.stopping = threading.Event()
        self.error: BaseException | None = None

    def take(self, timeout: float) -> T | None:
        """The next item, None after ``timeout``; raises the stage's error if it failed."""
        if self.error is not None:
            raise self.error
        try:
            return self.queue.get(timeout=timeout)
        except queue.Empty:
            if self.error is not None:
                raise self.error from None
            return None

    def stop(self) -> None:
        self.stopping.set()

    def offer(self, item: T, stale: Callable[[], bool], waiting: Callable[[], None] | None = None) -> None:
        """Queue ``item``, waiting while the queue is full; give up when stopped or ``stale()``.
        ``waiting`` is called every :data:`WAIT_S` while the queue stays full."""
        while not self.stopping.is_set():
            if stale():
                return
            try:
                self.queue.put(item, timeout=WAIT_S)
                return
            except queue.Full:
                if waiting is not None:
                    waiting()

    def drain(self) -> None:
        """Drop everything queued."""
        while True:
            try:
                self.queue.get_nowait()
            except queue.Empty:
                return
