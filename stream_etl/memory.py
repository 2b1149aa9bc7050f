"""Allocator settings of a worker process: how much freed memory stays mapped.

A worker frees a whole batch at a time (Python ``bytes``, Arrow buffers, delta-rs's Parquet
buffers) from three threads. With the allocators' defaults much of that stays mapped:

- glibc gives each thread that allocates its own arena (up to 8 per core), and every arena
  keeps its own freed pages: :func:`tune` caps them at two (``mallopt(M_ARENA_MAX)``) before
  the worker's threads start, unless ``MALLOC_ARENA_MAX`` is set;
- delta-rs allocates with its own jemalloc, which returns freed pages after 10 s, longer than
  a backlog of a million records takes; with ``_RJEM_MALLOC_CONF`` unset, :func:`tune` makes
  that 1 s (jemalloc reads it when delta-rs first allocates, after this runs; 0 s saved
  ~15 MB more but cost ~0.3 CPU-s per 1M records in page faults);
- glibc serves allocations above a threshold with their own mapping, unmapped on free, but
  raises the threshold (up to 32 MB) whenever such a block is freed, so a batch's buffers
  soon come from the heaps and their pages stay: :func:`tune` pins it at 256 KB (as
  ``MALLOC_MMAP_THRESHOLD_`` would), unless that variable is set.

(``malloc_trim`` after each commit saved ~25 MB more but cost ~0.25 CPU-s per 1M records in
page faults, so it is not used.)

Measured on the 1M-order benchmark: see bench/README.md, "Profile". Elsewhere than glibc
(musl, macOS) these are no-ops.
"""

from __future__ import annotations

import ctypes
import os
from functools import cache

_M_ARENA_MAX, _M_MMAP_THRESHOLD = -8, -3  # glibc's mallopt parameters
_MMAP_THRESHOLD = 256 * 1024
_JEMALLOC_CONF = "dirty_decay_ms:1000,muzzy_decay_ms:0"


@cache
def _libc() -> ctypes.CDLL | None:
    libc = ctypes.CDLL(None)  # the symbols the process has loaded: libc's among them
    return libc if hasattr(libc, "mallopt") else None


def tune() -> None:
    """Cap glibc's arenas, pin its mmap threshold, make delta-rs's jemalloc return freed pages.

    Call before threads start."""
    os.environ.setdefault("_RJEM_MALLOC_CONF", _JEMALLOC_CONF)
    libc = _libc()
    if libc is not None and "MALLOC_ARENA_MAX" not in os.environ:
        libc.mallopt(_M_ARENA_MAX, 2)
    if libc is not None and "MALLOC_MMAP_THRESHOLD_" not in os.environ:
        libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)
