"""docs/CONTROL_PLANE.md's walk-through runs as written (on free ports and a temporary directory)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from stream_etl.devstack import free_port

ROOT = Path(__file__).resolve().parents[3]


def run_doc_script(heading: str, state: str, tmp_path: Path) -> tuple[int, str]:
    """Run the first bash block under ``heading`` of docs/CONTROL_PLANE.md on free ports, with its
    state directory ``state`` moved to ``tmp_path``; (exit code, output)."""
    text = (ROOT / "docs" / "CONTROL_PLANE.md").read_text()
    script = text.split(heading, 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    kafka, s3, api = free_port(), free_port(), free_port()
    script = script.replace(f"$PWD/{state}", str(tmp_path)).replace(state, str(tmp_path))
    script = re.sub(r"\b9092\b", str(kafka), script)
    script = re.sub(r"\b8333\b", str(s3), script)
    script = re.sub(r"\b8088\b", str(api), script)
    script = script.replace("stream-etl dev up", f"stream-etl dev up --kafka-port {kafka} --s3-port {s3}")
    # Whatever happens, leave no server behind.
    script = "trap 'kill $(jobs -p) 2>/dev/null || true; stream-etl dev down > /dev/null 2>&1 || true' EXIT\n" + script
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("STREAM_ETL_")},
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "STREAM_ETL_DEV_DIR": str(tmp_path / "dev"),
    }
    result = subprocess.run(
        ["bash", "-e", "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=540, check=False
    )
    return result.returncode, result.stdout + result.stderr


@pytest.mark.slow
@pytest.mark.services  # starts its own local stack, as the doc does
@pytest.mark.timeout(600)
def test_the_walkthrough_runs(tmp_path: Path) -> None:
    code, output = run_doc_script("## A walk-through", ".stream-etl/walkthrough", tmp_path)
    assert code == 0, output[-4000:]
    assert '"state":"SUCCEEDED"' in output.replace(" ", "")
    assert "Kafka reached" in output and "S3 reached" in output
    assert "stream-etl-local" not in output  # the S3 secret given on stdin is shown nowhere
    assert '"openapi"' in output
