"""`stream-etl table compact|vacuum|checkpoint` on a local table: what they print, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
from deltalake import DeltaTable, write_deltalake

from tests.stream_etl.test_cli import _run


def _table(tmp_path: Path) -> str:
    uri = str(tmp_path / "t")
    for i in range(4):
        write_deltalake(uri, pa.table({"id": [i]}), mode="append")
    return uri


def test_compact_prints_what_it_did_and_json(tmp_path: Path) -> None:
    uri = _table(tmp_path)
    code, output = _run(["table", "compact", uri], tmp_path)
    assert code == 0, output
    assert "files removed 4, added 1" in output and "active files 4 -> 1" in output
    code, output = _run(["table", "compact", uri, "--json"], tmp_path)
    assert code == 0 and json.loads(output)["skipped"].startswith("1 file(s) below")
    assert sorted(DeltaTable(uri).to_pyarrow_table()["id"].to_pylist()) == [0, 1, 2, 3]


def test_vacuum_and_checkpoint(tmp_path: Path) -> None:
    uri = _table(tmp_path)
    _run(["table", "compact", uri], tmp_path)
    code, output = _run(["table", "vacuum", uri, "--retention-hours", "0"], tmp_path)
    assert code == 2 and "--no-enforce-retention" in output
    code, output = _run(
        ["table", "vacuum", uri, "--retention-hours", "0", "--no-enforce-retention", "--json"], tmp_path
    )
    assert code == 0 and json.loads(output)["files_removed"] == 4
    code, output = _run(["table", "checkpoint", uri], tmp_path)
    assert code == 0 and "checkpoint" in output and "log files" in output
    assert _run(["table", "compact", str(tmp_path / "missing")], tmp_path)[0] == 2
