from __future__ import annotations

import pyarrow as pa
import pytest

from stream_etl.control import schemas
from stream_etl.control.catalog import Catalog
from stream_etl.control.errors import AlreadyExists, NotFound
from stream_etl.control.store import Store
from stream_etl.errors import ConfigurationError

ORDERS = pa.schema(
    [
        pa.field("id", pa.int64(), nullable=False),
        pa.field("amount", pa.float64()),
        pa.field("country", pa.string()),
        pa.field("ts", pa.timestamp("us", tz="UTC")),
        pa.field("tags", pa.list_(pa.string())),
        pa.field("address", pa.struct([pa.field("city", pa.string())])),
    ]
)


def test_schema_json_round_trips_nested_types() -> None:
    schema = ORDERS.append(pa.field("price", pa.decimal128(10, 2))).append(
        pa.field("attrs", pa.map_(pa.string(), pa.int32()))
    )
    assert schemas.loads(schemas.dumps(schema)).equals(schema)
    assert schemas.schema_to_json(schema)[0] == {"name": "id", "type": "int64", "nullable": False}


def test_schema_diff_lists_added_removed_and_changed_columns() -> None:
    new = pa.schema(
        [
            pa.field("id", pa.int64(), nullable=False),
            pa.field("amount", pa.decimal128(12, 2)),
            pa.field("ts", pa.timestamp("us", tz="UTC")),
            pa.field("tags", pa.list_(pa.string())),
            pa.field("address", pa.struct([pa.field("city", pa.string()), pa.field("zip", pa.string())])),
            pa.field("note", pa.string()),
        ]
    )
    found = schemas.diff(ORDERS, new)
    assert found.added == ["address.zip", "note"]
    assert found.removed == ["country"]
    assert [(c.column, c.old, c.new) for c in found.changed] == [("amount", "double", "decimal128(12, 2)")]


def test_databases_and_tables(store: Store) -> None:
    catalog = Catalog(store)
    catalog.create_database("sales", description="orders and refunds")
    with pytest.raises(AlreadyExists):
        catalog.create_database("sales")
    assert catalog.create_database("sales", exist_ok=True).name == "sales"
    table = catalog.create_table(
        "sales",
        "orders",
        location="s3://lake/orders/",
        format="delta",
        schema=ORDERS,
        partition_keys=["country"],
        parameters={"owner": "team-a"},
    )
    assert table.location == "s3://lake/orders"
    assert table.schema_version == 1 and table.classification == "delta"
    assert table.arrow_schema().equals(ORDERS)
    assert catalog.get_table("sales", "orders").partition_keys == ["country"]
    assert catalog.find_table("s3://lake/orders") is not None
    assert [t.name for t in catalog.list_tables("sales")] == ["orders"]
    assert catalog.list_databases()[0].tables == 1
    assert catalog.update_table("sales", "orders", parameters={"tier": "gold"}).parameters == {
        "owner": "team-a",
        "tier": "gold",
    }
    with pytest.raises(AlreadyExists):
        catalog.create_table("sales", "orders", location="x", format="delta", schema=ORDERS)
    with pytest.raises(ConfigurationError, match="partition key"):
        catalog.create_table("sales", "bad", location="x", format="delta", schema=ORDERS, partition_keys=["dt"])
    with pytest.raises(ConfigurationError, match="not valid"):
        catalog.create_database("no spaces")
    catalog.delete_table("sales", "orders")
    with pytest.raises(NotFound):
        catalog.get_table("sales", "orders")


def test_schema_versions_keep_history_and_diff(store: Store) -> None:
    catalog = Catalog(store)
    catalog.create_database("db")
    catalog.create_table("db", "t", location="/tmp/t", format="parquet", schema=ORDERS)
    assert catalog.update_schema("db", "t", ORDERS) is None  # unchanged: no new version
    evolved = ORDERS.append(pa.field("note", pa.string()))
    assert catalog.update_schema("db", "t", evolved, source="test") == 2
    history = catalog.versions("db", "t")
    assert [v.version for v in history] == [1, 2]
    assert history[1].source == "test"
    assert catalog.get_table("db", "t").arrow_schema().equals(evolved)
    assert catalog.diff("db", "t", 1).added == ["note"]
    assert catalog.diff("db", "t", 2, 1).removed == ["note"]
    with pytest.raises(NotFound):
        catalog.diff("db", "t", 7)


def test_partitions(store: Store) -> None:
    catalog = Catalog(store)
    catalog.create_database("db")
    schema = pa.schema([("v", pa.int64()), ("dt", pa.string()), ("hour", pa.string())])
    catalog.create_table(
        "db", "events", location="s3://lake/events", format="parquet", schema=schema, partition_keys=["dt", "hour"]
    )
    catalog.add_partition("db", "events", ["2026-11-21", "08"], location="s3://lake/events/dt=2026-11-21/hour=08")
    catalog.add_partition("db", "events", ["2026-11-21", "07"], location="s3://lake/events/dt=2026-11-21/hour=07")
    catalog.add_partition("db", "events", ["2026-11-21", "08"], location="moved", parameters={"files": 3})
    found = catalog.list_partitions("db", "events")
    assert [p.values for p in found] == [["2026-11-21", "07"], ["2026-11-21", "08"]]
    assert found[1].location == "moved" and found[1].parameters == {"files": 3}
    with pytest.raises(ConfigurationError, match="partitioned by"):
        catalog.add_partition("db", "events", ["2026-11-21"])
