"""docs/TRANSFORMS.md: its examples run, in order, in one namespace, and every step is documented."""

from __future__ import annotations

import re
from pathlib import Path

from stream_etl.topology import Stream

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "TRANSFORMS.md"

GLUE_METHODS = [
    "apply_mapping", "select_fields", "drop_fields", "rename_field", "drop_null_fields", "fill_missing_values",
    "sql", "flatten", "relationalize", "unbox", "explode", "resolve_choice", "mask", "hash", "redact",
    "ingestion_time", "date_partitions", "map",
]  # fmt: skip


def test_the_examples_run() -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    assert len(blocks) >= 14
    namespace: dict[str, object] = {"__name__": "transforms_doc"}
    for number, block in enumerate(blocks, 1):
        exec(compile(block, f"{DOC.name} example {number}", "exec"), namespace)  # noqa: S102 - our own doc


def test_every_glue_method_exists_and_has_a_section() -> None:
    text = DOC.read_text()
    headings = " ".join(re.findall(r"^## (.*)$", text, re.M))
    for method in GLUE_METHODS:
        assert callable(getattr(Stream, method)), method
        assert method in headings, f"docs/TRANSFORMS.md has no section for {method}"
