"""The schema registry service on a real store (SQLite and Postgres), and decoders resolving from it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from stream_etl import Topology
from stream_etl.control.errors import AlreadyExists, InvalidState, NotFound
from stream_etl.control.registry import IncompatibleSchema, SchemaRegistry
from stream_etl.control.store import Store
from stream_etl.errors import ConfigurationError
from stream_etl.formats import ConfluentAvroFormat, StoreResolver
from stream_etl.formats.avro import confluent_frame, encode
from stream_etl.testing import ListSource, MemorySink, run_topology


def avro(*fields: dict[str, Any]) -> str:
    return json.dumps({"type": "record", "name": "Order", "namespace": "shop", "fields": list(fields)})


ID = {"name": "id", "type": "long"}
USER = {"name": "user", "type": "string", "default": ""}
COUPON = {"name": "coupon", "type": ["null", "string"], "default": None}
V1, V2, V3 = avro(ID), avro(ID, USER), avro(ID, USER, COUPON)


@pytest.fixture
def registry(store: Store) -> SchemaRegistry:
    found = SchemaRegistry(store)
    found.create_registry("shop", description="orders and friends")
    return found


def test_registries_are_created_listed_and_deleted_with_their_schemas(registry: SchemaRegistry) -> None:
    with pytest.raises(AlreadyExists):
        registry.create_registry("shop")
    with pytest.raises(ConfigurationError, match="registry name"):
        registry.create_registry("no spaces")
    first = registry.create_schema("shop", "orders", V1)
    assert [(r.name, r.schemas) for r in registry.list_registries()] == [("shop", 1)]
    registry.delete_registry("shop")
    assert registry.list_registries() == []
    with pytest.raises(NotFound):
        registry.get_by_id(first.id)
    with pytest.raises(NotFound, match="no registry 'shop'"):
        registry.list_schemas("shop")


def test_versions_count_up_and_an_identical_definition_returns_the_existing_one(registry: SchemaRegistry) -> None:
    first = registry.create_schema("shop", "orders", V1, description="order events")
    assert (first.version, first.data_format, first.status) == (1, "AVRO", "AVAILABLE")
    second = registry.register("shop", "orders", V2)
    assert second.version == 2 and second.id != first.id
    assert registry.register("shop", "orders", json.dumps(json.loads(V2), indent=2)).id == second.id  # same canonically
    assert registry.register("shop", "orders", V1).version == 1
    assert [v.version for v in registry.versions("shop", "orders")] == [1, 2]
    assert registry.get_version("shop", "orders").version == 2  # latest
    assert registry.get_version("shop", "orders", 1).definition == V1
    assert registry.get_by_id(second.id).definition == V2
    info = registry.get_schema("shop", "orders")
    assert (info.latest_version, info.compatibility, info.description) == (2, "BACKWARD", "order events")
    with pytest.raises(NotFound):
        registry.get_version("shop", "orders", 9)
    with pytest.raises(AlreadyExists):
        registry.create_schema("shop", "orders", V1)


def test_backward_refuses_a_version_that_cannot_read_the_latest(registry: SchemaRegistry) -> None:
    registry.create_schema("shop", "orders", V1)
    needs_user = avro(ID, {"name": "user", "type": "string"})
    with pytest.raises(IncompatibleSchema) as refused:
        registry.register("shop", "orders", needs_user)
    assert refused.value.reasons == [
        "BACKWARD (version 1): field user is not in the writer's schema and has no default"
    ]
    assert [v.version for v in registry.versions("shop", "orders")] == [1]
    result = registry.check("shop", "orders", needs_user)
    assert (result.compatible, result.checked_against) == (False, [1])
    assert registry.check("shop", "orders", needs_user, mode="FORWARD").compatible


def test_all_modes_check_every_earlier_version(registry: SchemaRegistry) -> None:
    registry.create_schema("shop", "orders", avro(ID, USER), compatibility="BACKWARD")
    registry.register("shop", "orders", avro(ID))  # drops user: fine for BACKWARD
    readds = avro(ID, {"name": "user", "type": "long", "default": 0})  # user back, as a long
    assert registry.check("shop", "orders", readds).compatible  # v2 has no user
    result = registry.check("shop", "orders", readds, mode="BACKWARD_ALL")
    assert not result.compatible and result.checked_against == [1, 2]
    assert result.reasons == ["BACKWARD (version 1): at user: the writer's string cannot be read as long"]
    registry.set_compatibility("shop", "orders", "FULL_ALL")
    with pytest.raises(IncompatibleSchema):
        registry.register("shop", "orders", readds)
    registry.set_compatibility("shop", "orders", "NONE")
    assert registry.register("shop", "orders", readds).version == 3


def test_disabled_schemas_take_no_new_versions(registry: SchemaRegistry) -> None:
    registry.create_schema("shop", "orders", V1, compatibility="DISABLED")
    assert registry.register("shop", "orders", V1).version == 1  # an existing definition is still found
    with pytest.raises(InvalidState, match="DISABLED"):
        registry.register("shop", "orders", V2)
    with pytest.raises(ConfigurationError, match="compatibility mode 'SIDEWAYS'"):
        registry.set_compatibility("shop", "orders", "SIDEWAYS")  # type: ignore[arg-type]


def test_invalid_definitions_and_formats_are_refused(registry: SchemaRegistry) -> None:
    with pytest.raises(ConfigurationError, match="invalid Avro schema"):
        registry.create_schema("shop", "orders", '{"type": "record"}')
    with pytest.raises(ConfigurationError, match="data format 'XML'"):
        registry.create_schema("shop", "orders", V1, data_format="XML")  # type: ignore[arg-type]
    json_schema = registry.create_schema("shop", "events", '{"type": "object"}', data_format="JSON")
    assert json_schema.data_format == "JSON"
    with pytest.raises(IncompatibleSchema, match="the reader closes the content model"):
        registry.register("shop", "events", '{"type": "object", "additionalProperties": false}')
    assert [s.name for s in registry.list_schemas("shop")] == ["events"]  # orders was refused


def test_global_ids_are_unique_across_schemas_and_never_reused(registry: SchemaRegistry) -> None:
    registry.create_registry("other")
    ids = [
        registry.create_schema("shop", "orders", V1).id,
        registry.create_schema("other", "orders", V1).id,
        registry.register("shop", "orders", V2).id,
    ]
    assert len(set(ids)) == 3
    registry.delete_schema("shop", "orders")  # drops the highest id
    assert registry.create_schema("shop", "orders", V3).id > max(ids)
    assert registry.subjects() == [("other", "orders"), ("shop", "orders")]


def test_diff_between_versions(registry: SchemaRegistry) -> None:
    registry.create_schema("shop", "orders", V1)
    registry.register("shop", "orders", V3)
    found = registry.diff("shop", "orders", 1)
    assert found.startswith("--- shop.orders v1\n+++ shop.orders v2\n")
    assert '+      "name": "coupon",' in found.splitlines()
    assert registry.diff("shop", "orders", 2, 2) == ""


def test_a_topology_decodes_confluent_avro_with_schemas_from_the_store(registry: SchemaRegistry, store: Store) -> None:
    v1 = registry.create_schema("shop", "orders", V1)
    v3 = registry.register("shop", "orders", V3)
    values = [
        confluent_frame(v1.id, encode(V1, {"id": 1})),
        confluent_frame(v3.id, encode(V3, {"id": 2, "user": "ana", "coupon": "X"})),
        confluent_frame(v3.id + 100, encode(V1, {"id": 3})),  # an id nobody registered
    ]
    resolver = StoreResolver(store)
    topology = Topology("orders")
    topology.source(ListSource([]), format=ConfluentAvroFormat(resolver)).sink(MemorySink("out"))

    result = run_topology(topology, values)

    rows = result.output().select(["id", "user", "coupon"]).sort_by("id").to_pylist()
    assert rows == [{"id": 1, "user": None, "coupon": None}, {"id": 2, "user": "ana", "coupon": "X"}]
    assert result.dead_letters.num_rows == 1
    assert f"unknown schema id {v3.id + 100}" in result.dead_letters.column("error").to_pylist()[0]


def test_the_store_resolver_opens_a_url_and_skips_other_formats(registry: SchemaRegistry, store: Store) -> None:
    avro_id = registry.create_schema("shop", "orders", V1).id
    json_id = registry.create_schema("shop", "events", '{"type": "object"}', data_format="JSON").id
    resolver = StoreResolver(store.engine.url.render_as_string(hide_password=False))
    try:
        assert resolver.resolve(avro_id) == V1
        assert resolver.resolve(json_id) is None
        assert resolver.resolve(avro_id + json_id + 10) is None
        assert StoreResolver(store, data_format="JSON").resolve(json_id) == '{"type": "object"}'
    finally:
        resolver.close()


def test_concurrent_registrations_each_get_their_own_version(registry: SchemaRegistry) -> None:
    from concurrent.futures import ThreadPoolExecutor

    registry.create_schema("shop", "orders", V1, compatibility="NONE")
    definitions = [avro(ID, {"name": f"f{i}", "type": "long", "default": 0}) for i in range(12)]
    with ThreadPoolExecutor(4) as pool:
        found = list(pool.map(lambda d: registry.register("shop", "orders", d), definitions))
    assert sorted(v.version for v in found) == list(range(2, 14))
    assert {v.definition for v in registry.versions("shop", "orders")} == {V1, *definitions}
