"""docs/CONNECTORS.md's Python examples run as written (constructors and option translation;
the Faust app is built, not started)."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BLOCKS = [b.split("```", 1)[0] for b in (ROOT / "docs" / "CONNECTORS.md").read_text().split("```python\n")[1:]]


@pytest.mark.parametrize("code", BLOCKS, ids=[f"block-{i}" for i in range(len(BLOCKS))])
def test_connectors_doc_example_runs(code: str) -> None:
    exec(compile(code, "docs/CONNECTORS.md", "exec"), {"__name__": "connectors_doc"})  # noqa: S102 - our own docs
