"""The command line's consoles, made on first use.

Importing ``rich.console`` (and the progress bar and tables) takes ~25-50 ms, paid before a
worker could subscribe when the CLI module made its consoles at import: every command
module shares these instead, and rich loads when something is first printed.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table


class LazyConsole:
    """Stands for ``rich.console.Console(**options)``, made when first used."""

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._console: Console | None = None

    @property
    def console(self) -> Console:
        """The real console (to hand to rich, e.g. ``Progress(console=...)``)."""
        if self._console is None:
            from rich.console import Console

            self._console = Console(**self._options)
        return self._console

    @property
    def is_terminal(self) -> bool:
        """``Console.is_terminal``, without loading rich (~28 ms) for a stream that is plainly
        not a terminal (a worker's log file or pipe) when nothing asks rich to think otherwise."""
        if self._console is None and set(self._options) <= {"stderr"} and not _terminal_forced():
            stream = sys.stderr if self._options.get("stderr") else sys.stdout
            isatty = getattr(stream, "isatty", None)
            if isatty is not None and not isatty():
                return False
        return bool(self.console.is_terminal)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.console, name)


def _terminal_forced() -> bool:
    """Whether rich's own checks could call a non-tty stream a terminal (its environment overrides)."""
    return os.environ.get("TTY_COMPATIBLE", "") == "1" or os.environ.get("FORCE_COLOR") is not None


def new_table(*columns: Any, **options: Any) -> Table:
    """A ``rich.table.Table``, importing rich when first needed."""
    from rich.table import Table

    return Table(*columns, **options)
