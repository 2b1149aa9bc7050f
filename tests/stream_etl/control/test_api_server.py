"""`stream-etl api serve` serves the API with uvicorn on 127.0.0.1."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx

from stream_etl.control.store import Store
from stream_etl.control.tokens import Tokens
from stream_etl.devstack import free_port


def test_api_serve_answers_on_loopback(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'control.db'}"
    with Store.open(url) as store:
        token, _info = Tokens(store).create("viewer", "viewer")
    port = free_port()
    log = (tmp_path / "api.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "stream_etl", "api", "serve", "--port", str(port), "--db", url],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            deadline = time.monotonic() + 60
            while True:
                try:
                    health = client.get("/health")
                    break
                except httpx.TransportError:
                    assert server.poll() is None, (tmp_path / "api.log").read_text()
                    assert time.monotonic() < deadline, (tmp_path / "api.log").read_text()
                    time.sleep(0.2)
            assert health.json()["status"] == "ok"
            assert client.get("/jobs").status_code == 401
            assert client.get("/jobs", headers={"Authorization": f"Bearer {token}"}).json() == []
            assert "/jobs/{name}/runs" in client.get("/openapi.json").json()["paths"]
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
    assert "Uvicorn running on http://127.0.0.1:" in (tmp_path / "api.log").read_text()
