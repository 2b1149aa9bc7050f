"""The engine's hot path never loads the control plane's dependencies."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("sqlalchemy", "alembic", "fastapi", "starlette", "uvicorn", "cryptography", "psycopg")


def test_running_a_topology_imports_no_control_plane_dependency() -> None:
    code = (
        "import sys, json\n"
        "import stream_etl.cli, stream_etl.runloop, connectors.delta.sink, connectors.kafka.source\n"
        f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert json.loads(result.stdout) == []
