"""The CLI's lazy consoles: rich loads only when something is printed or a terminal is possible."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CODE = (
    "import sys\n"
    "from stream_etl.console import LazyConsole\n"
    "print(LazyConsole(stderr=True).is_terminal, 'rich' in sys.modules)\n"
)


def _is_terminal(**env: str) -> str:
    environment = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE")}
    done = subprocess.run(
        [sys.executable, "-c", CODE],
        capture_output=True,  # stderr is a pipe: not a terminal
        text=True,
        cwd=ROOT,
        env={**environment, **env},
        check=True,
    )
    return done.stdout.strip()


def test_a_log_file_or_pipe_is_no_terminal_and_rich_stays_unloaded() -> None:
    assert _is_terminal() == "False False"


@pytest.mark.parametrize(("name", "value", "expected"), [("FORCE_COLOR", "1", "True"), ("TTY_COMPATIBLE", "1", "True")])
def test_the_environment_rich_honours_still_decides(name: str, value: str, expected: str) -> None:
    assert _is_terminal(**{name: value}) == f"{expected} True"
