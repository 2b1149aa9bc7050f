"""Crawler routes: create, run in the background, poll the run; classifiers; roles."""

from __future__ import annotations

import time
from pathlib import Path

from fastapi.testclient import TestClient

from tests.stream_etl.control.test_api import client, tokens  # noqa: F401 - fixtures


def test_an_operator_runs_a_crawler_and_a_viewer_reads_the_run(
    client: TestClient,  # noqa: F811
    tokens: dict[str, dict[str, str]],  # noqa: F811
    tmp_path: Path,
) -> None:
    (tmp_path / "events").mkdir()
    (tmp_path / "events" / "a.json").write_text('{"id": 1}\n')
    crawler = {"name": "ev", "database": "lake", "targets": [{"kind": "path", "path": str(tmp_path / "events")}]}
    assert client.post("/crawlers", json=crawler, headers=tokens["viewer"]).status_code == 403
    assert client.post("/crawlers", json=crawler, headers=tokens["operator"]).status_code == 201
    assert client.post("/crawlers", json=crawler, headers=tokens["operator"]).status_code == 409

    assert client.post("/crawlers/ev/runs", headers=tokens["viewer"]).status_code == 403
    started = client.post("/crawlers/ev/runs", json={"run_properties": {"why": "test"}}, headers=tokens["operator"])
    assert started.status_code == 202, started.text
    run_id = started.json()["id"]
    deadline = time.monotonic() + 20
    run = started.json()
    while run["state"] == "RUNNING" and time.monotonic() < deadline:
        time.sleep(0.05)
        run = client.get(f"/crawler-runs/{run_id}", headers=tokens["viewer"]).json()

    assert run["state"] == "SUCCEEDED", run
    assert run["changes"]["counts"]["tables_created"] == 1
    assert run["changes"]["run_properties"] == {"why": "test"}
    assert [r["id"] for r in client.get("/crawlers/ev/runs", headers=tokens["viewer"]).json()] == [run_id]
    assert client.get("/crawlers/ev", headers=tokens["viewer"]).json()["last_run"]["id"] == run_id
    table = client.get("/catalog/databases/lake/tables/events", headers=tokens["viewer"]).json()
    assert table["classification"] == "json"
    assert client.get("/crawlers/nope", headers=tokens["viewer"]).status_code == 404
    assert client.delete("/crawlers/ev", headers=tokens["operator"]).status_code == 204


def test_classifier_routes(client: TestClient, tokens: dict[str, dict[str, str]]) -> None:  # noqa: F811
    body = {"name": "web", "kind": "grok", "settings": {"pattern": "%{IP:ip} %{GREEDYDATA:rest}"}}
    assert client.post("/classifiers", json=body, headers=tokens["operator"]).status_code == 201
    bad = {"name": "bad", "kind": "grok", "settings": {"pattern": "%{NOPE:x}"}}
    assert client.post("/classifiers", json=bad, headers=tokens["operator"]).status_code == 400
    assert [c["name"] for c in client.get("/classifiers", headers=tokens["viewer"]).json()] == ["web"]
    assert client.delete("/classifiers/web", headers=tokens["operator"]).status_code == 204
    assert client.get("/classifiers/web", headers=tokens["viewer"]).status_code == 404
