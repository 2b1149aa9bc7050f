"""The schema registry's API routes, its Confluent-compatible reads, and RegistryResolver against a
real server (uvicorn on 127.0.0.1)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient

from stream_etl.control.api import create_app
from stream_etl.control.store import Store
from stream_etl.control.tokens import Tokens
from stream_etl.devstack import free_port
from stream_etl.errors import SchemaRegistryUnavailable
from stream_etl.formats import ConfluentAvroFormat, RegistryResolver
from stream_etl.formats.avro import confluent_frame, encode
from tests.stream_etl.control.test_registry import V1, V2, avro

BASE = "/registry/registries"


@pytest.fixture
def client(store: Store) -> Iterator[TestClient]:
    with TestClient(create_app(store, None)) as opened:
        yield opened


@pytest.fixture
def tokens(store: Store) -> dict[str, str]:
    return {role: Tokens(store).create(f"t-{role}", role)[0] for role in ("viewer", "operator", "admin")}


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_registry_routes_with_roles(client: TestClient, tokens: dict[str, str]) -> None:
    viewer, operator, admin = (_auth(tokens[r]) for r in ("viewer", "operator", "admin"))
    assert client.post(BASE, json={"name": "shop"}, headers=viewer).status_code == 403
    assert client.post(BASE, json={"name": "shop"}, headers=operator).status_code == 201
    assert client.post(BASE, json={"name": "shop"}, headers=operator).status_code == 409
    created = client.post(f"{BASE}/shop/schemas", json={"name": "orders", "definition": V1}, headers=operator)
    assert created.status_code == 201, created.text
    assert (created.json()["version"], created.json()["data_format"]) == (1, "AVRO")
    registered = client.post(f"{BASE}/shop/schemas/orders/versions", json={"definition": V2}, headers=operator)
    assert registered.status_code == 200 and registered.json()["version"] == 2

    refused = client.post(
        f"{BASE}/shop/schemas/orders/versions",
        json={"definition": avro({"name": "id", "type": "int"})},
        headers=operator,
    )
    assert refused.status_code == 409
    assert refused.json()["reasons"] == ["BACKWARD (version 2): at id: the writer's long cannot be read as int"]
    check = client.post(
        f"{BASE}/shop/schemas/orders/compatibility", json={"definition": V1, "mode": "FORWARD"}, headers=viewer
    )
    assert check.json() == {"compatible": True, "mode": "FORWARD", "checked_against": [2], "reasons": []}
    changed = client.put(f"{BASE}/shop/schemas/orders/compatibility", json={"compatibility": "NONE"}, headers=operator)
    assert changed.status_code == 200 and changed.json()["compatibility"] == "NONE"
    assert (
        client.put(
            f"{BASE}/shop/schemas/orders/compatibility", json={"compatibility": "X"}, headers=operator
        ).status_code
        == 422
    )

    assert [v["version"] for v in client.get(f"{BASE}/shop/schemas/orders/versions", headers=viewer).json()] == [1, 2]
    latest = client.get(f"{BASE}/shop/schemas/orders/versions/latest", headers=viewer).json()
    assert latest["definition"] == V2
    assert client.get(f"/registry/schemas/ids/{latest['id']}", headers=viewer).json()["version"] == 2
    assert client.get(f"{BASE}/shop/schemas/orders/versions/7", headers=viewer).status_code == 404
    assert "+++ shop.orders v2" in client.get(f"{BASE}/shop/schemas/orders/diff", headers=viewer).text
    assert [s["name"] for s in client.get(f"{BASE}/shop/schemas", headers=viewer).json()] == ["orders"]

    assert client.delete(f"{BASE}/shop", headers=operator).status_code == 403
    assert client.delete(f"{BASE}/shop", headers=admin).status_code == 204
    assert client.get(BASE, headers=viewer).json() == []


def test_confluent_reads(client: TestClient, tokens: dict[str, str]) -> None:
    viewer, operator = _auth(tokens["viewer"]), _auth(tokens["operator"])
    for name in ("shop", "default-registry"):
        client.post(BASE, json={"name": name}, headers=operator)
    orders = client.post(f"{BASE}/shop/schemas", json={"name": "orders", "definition": V1}, headers=operator).json()
    events = client.post(
        f"{BASE}/default-registry/schemas",
        json={"name": "events-value", "definition": '{"type": "object"}', "data_format": "JSON"},
        headers=operator,
    ).json()
    confluent = "/registry/confluent"
    assert client.get(f"{confluent}/subjects").status_code == 401
    assert client.get(f"{confluent}/subjects", headers=viewer).json() == ["events-value", "shop:orders"]
    found = client.get(f"{confluent}/schemas/ids/{orders['id']}", headers=viewer)
    assert found.json() == {"schema": V1}
    assert found.headers["content-type"] == "application/vnd.schemaregistry.v1+json"
    assert client.get(f"{confluent}/schemas/ids/{events['id']}", headers=viewer).json() == {
        "schema": '{"type": "object"}',
        "schemaType": "JSON",
    }
    missing = client.get(f"{confluent}/schemas/ids/999", headers=viewer)
    assert missing.status_code == 404 and missing.json()["error_code"] == 40403
    assert client.get(f"{confluent}/subjects/shop:orders/versions", headers=viewer).json() == [1]
    assert client.get(f"{confluent}/subjects/events-value/versions/latest", headers=viewer).json()["id"] == events["id"]
    version = client.get(f"{confluent}/subjects/shop:orders/versions/1", headers=viewer).json()
    assert version == {"subject": "shop:orders", "version": 1, "id": orders["id"], "schema": V1}
    assert client.get(f"{confluent}/subjects/shop:nothing/versions", headers=viewer).json()["error_code"] == 40401


def test_registry_resolver_decodes_through_a_real_api_server(store: Store, tokens: dict[str, str]) -> None:
    from stream_etl.control.registry import SchemaRegistry

    registry = SchemaRegistry(store)
    registry.create_registry("shop")
    schema_id = registry.create_schema("shop", "orders", V1).id
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(store, None), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive()
            time.sleep(0.05)
        url = f"http://127.0.0.1:{port}/registry/confluent"
        fmt = ConfluentAvroFormat(RegistryResolver(url, bearer_token=tokens["viewer"]))
        decoded = fmt.decode([confluent_frame(schema_id, encode(V1, {"id": 7})), confluent_frame(999, b"\x02")])
        assert decoded.table is not None and decoded.table.column("id").to_pylist() == [7]
        assert [f.message for f in decoded.failures] == [f"unknown schema id 999 (RegistryResolver({url!r}))"]
        with pytest.raises(SchemaRegistryUnavailable, match="refused the credentials"):
            RegistryResolver(url, bearer_token="se_wrong", attempts=1).resolve(schema_id)
        with httpx.Client() as http:  # the same route answers a Confluent client's request
            assert http.get(f"{url}/schemas/ids/{schema_id}", headers=_auth(tokens["viewer"])).json() == {"schema": V1}
    finally:
        server.should_exit = True
        thread.join(timeout=10)
