"""docs/CONTROL_PLANE.md's triggers and workflows example runs as written (free ports, a temporary directory)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.stream_etl.control.test_walkthrough import run_doc_script


@pytest.mark.slow
@pytest.mark.services  # starts its own local stack, as the doc does
@pytest.mark.timeout(600)
def test_the_triggers_and_workflows_example_runs(tmp_path: Path) -> None:
    code, output = run_doc_script("### The scheduler: `stream-etl scheduler`", ".stream-etl/workflows", tmp_path)
    assert code == 0, output[-4000:]
    assert "workflow run 1 of nightly: COMPLETED" in output
    assert "crawler:orders-raw" in output and "SUCCEEDED" in output
    assert "copy-after-load" in output and "load-on-data" in output
