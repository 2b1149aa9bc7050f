from __future__ import annotations

from collections.abc import Iterator

import pytest
from cryptography.fernet import Fernet
from fastapi.testclient import TestClient

from stream_etl.control.api import create_app
from stream_etl.control.secrets import SecretBox
from stream_etl.control.store import Store
from stream_etl.control.tokens import Tokens

SCHEMA = [{"name": "id", "type": "int64", "nullable": False}, {"name": "dt", "type": "string", "nullable": True}]


@pytest.fixture
def client(store: Store) -> Iterator[TestClient]:
    with TestClient(create_app(store, SecretBox(Fernet.generate_key()))) as opened:
        yield opened


@pytest.fixture
def tokens(store: Store) -> dict[str, dict[str, str]]:
    made = {role: Tokens(store).create(f"t-{role}", role)[0] for role in ("viewer", "operator", "admin")}
    return {role: {"Authorization": f"Bearer {token}"} for role, token in made.items()}


def test_openapi_and_health_need_no_token(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert {"/jobs/{name}/runs", "/connections", "/catalog/databases/{database}/tables", "/runs/{run_id}/stop"} <= set(
        spec["paths"]
    )
    assert client.get("/health").json()["status"] == "ok"


def test_requests_without_a_valid_token_are_rejected(client: TestClient, store: Store) -> None:
    assert client.get("/jobs").status_code == 401
    assert client.get("/jobs", headers={"Authorization": "Bearer se_not-a-token"}).status_code == 401
    assert client.get("/jobs", headers={"Authorization": "Basic dXNlcjpwdw=="}).status_code == 401
    token, _info = Tokens(store).create("leaving", "admin")
    assert client.get("/jobs", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    Tokens(store).revoke("leaving")
    response = client.get("/jobs", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"


def test_a_viewer_cannot_start_a_job_and_an_operator_can(client: TestClient, tokens: dict[str, dict[str, str]]) -> None:
    job = {"name": "orders", "topology": "topologies/orders.py", "mode": "until_caught_up"}
    assert client.post("/jobs", json=job, headers=tokens["viewer"]).status_code == 403
    created = client.post("/jobs", json=job, headers=tokens["operator"])
    assert created.status_code == 201, created.text
    assert client.get("/jobs/orders", headers=tokens["viewer"]).json()["mode"] == "until_caught_up"

    refused = client.post("/jobs/orders/runs", headers=tokens["viewer"])
    assert refused.status_code == 403 and "operator" in refused.json()["detail"]
    started = client.post("/jobs/orders/runs", headers=tokens["operator"])
    assert started.status_code == 201 and started.json()["state"] == "WAITING"
    run_id = started.json()["id"]
    assert client.post("/jobs/orders/runs", headers=tokens["operator"]).status_code == 409  # one active run
    assert [r["id"] for r in client.get("/runs?job=orders", headers=tokens["viewer"]).json()] == [run_id]
    assert client.post(f"/runs/{run_id}/stop", headers=tokens["viewer"]).status_code == 403
    assert client.post(f"/runs/{run_id}/stop", headers=tokens["operator"]).json()["state"] == "STOPPED"
    assert client.get("/runs/999", headers=tokens["viewer"]).status_code == 404


def test_catalog_through_the_api(client: TestClient, tokens: dict[str, dict[str, str]]) -> None:
    op, view = tokens["operator"], tokens["viewer"]
    assert client.post("/catalog/databases", json={"name": "lake"}, headers=view).status_code == 403
    assert client.post("/catalog/databases", json={"name": "lake"}, headers=op).status_code == 201
    assert client.post("/catalog/databases", json={"name": "lake"}, headers=op).status_code == 409
    table = {"name": "events", "location": "s3://lake/events", "schema": SCHEMA, "partition_keys": ["dt"]}
    created = client.post("/catalog/databases/lake/tables", json=table, headers=op)
    assert created.status_code == 201, created.text
    assert created.json()["schema"] == SCHEMA
    bad = client.post(
        "/catalog/databases/lake/tables", json={**table, "name": "x", "partition_keys": ["nope"]}, headers=op
    )
    assert bad.status_code == 400 and "partition key" in bad.json()["detail"]
    part = client.post("/catalog/databases/lake/tables/events/partitions", json={"values": ["2026-11-21"]}, headers=op)
    assert part.status_code == 201
    assert client.get("/catalog/databases/lake/tables/events/partitions", headers=view).json()[0]["values"] == [
        "2026-11-21"
    ]
    assert [
        v["version"] for v in client.get("/catalog/databases/lake/tables/events/versions", headers=view).json()
    ] == [1]
    assert client.get("/catalog/databases/lake/tables/events/diff?old=1", headers=view).json()["added"] == []
    assert client.get("/catalog/databases/lake/tables/nope", headers=view).status_code == 404
    assert [d["name"] for d in client.get("/catalog/databases", headers=view).json()] == ["lake"]


def test_connections_and_tokens_need_admin(client: TestClient, tokens: dict[str, dict[str, str]]) -> None:
    body = {"name": "pg", "kind": "postgres", "fields": {"password": "hunter2-xyz"}}
    assert client.post("/connections", json=body, headers=tokens["operator"]).status_code == 403
    created = client.post("/connections", json=body, headers=tokens["admin"])
    assert created.status_code == 201 and created.json()["fields"]["password"] == "********"
    assert "hunter2-xyz" not in client.get("/connections/pg", headers=tokens["viewer"]).text
    assert client.get("/tokens", headers=tokens["operator"]).status_code == 403
    made = client.post("/tokens", json={"name": "ci", "role": "viewer"}, headers=tokens["admin"]).json()
    assert client.get("/jobs", headers={"Authorization": f"Bearer {made['token']}"}).status_code == 200
    listed = client.get("/tokens", headers=tokens["admin"]).text
    assert made["token"] not in listed and "ci" in listed
