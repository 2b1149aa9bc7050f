"""docs/SINKS.md's Python examples run as written (the constructors, and the Parquet example end to end)."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BLOCKS = [b.split("```", 1)[0] for b in (ROOT / "docs" / "SINKS.md").read_text().split("```python\n")[1:]]


@pytest.mark.parametrize("code", BLOCKS, ids=[f"block-{i}" for i in range(len(BLOCKS))])
def test_sinks_doc_example_runs(code: str) -> None:
    exec(compile(code, "docs/SINKS.md", "exec"), {"__name__": "sinks_doc"})  # noqa: S102 - our own docs
