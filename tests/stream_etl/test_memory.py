"""Allocator settings: applied in a fresh process (as `stream-etl run` does), user settings kept."""

from __future__ import annotations

import os
import subprocess
import sys

_PROBE = """
import os
from stream_etl import memory
memory.tune()
print(os.environ["_RJEM_MALLOC_CONF"])
print(memory._libc() is not None)
"""


def _probe(env: dict[str, str]) -> list[str]:
    clean = {k: v for k, v in os.environ.items() if k != "_RJEM_MALLOC_CONF"}
    done = subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-c", _PROBE], env={**clean, **env}, capture_output=True, text=True, check=True, timeout=60
    )
    return done.stdout.split()


def test_delta_rs_jemalloc_returns_freed_pages_after_a_second() -> None:
    conf, has_libc = _probe({})

    assert conf == "dirty_decay_ms:1000,muzzy_decay_ms:0"
    if sys.platform.startswith("linux"):
        assert has_libc == "True"  # glibc's mallopt is there to call


def test_a_users_allocator_settings_win() -> None:
    assert _probe({"_RJEM_MALLOC_CONF": "narenas:1"})[0] == "narenas:1"
