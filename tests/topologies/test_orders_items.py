"""topologies/orders_items.py with the in-memory harness: parent and child tables."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pyarrow as pa

from stream_etl.loader import load_topology
from stream_etl.testing import run_topology
from tests.e2e.test_relationalize import shop_order

ROOT = Path(__file__).resolve().parents[2]


def test_orders_and_items_go_to_their_own_tables() -> None:
    topology = load_topology(str(ROOT / "topologies" / "orders_items.py"))
    records = [shop_order(i) for i in range(1, 4)]

    result = run_topology(topology, [*records, b"{broken"])

    orders = result.output("orders")
    assert orders.column_names == ["id", "customer_name", "customer_email", "ts", "year", "month"]
    assert orders["id"].to_pylist() == [1, 2, 3]
    email = records[0]["customer"]["email"]
    assert orders["customer_email"][0].as_py() == hashlib.sha256(f"orders-demo{email}".encode()).hexdigest()
    items = result.output("order_items")
    assert items.schema == pa.schema(
        [
            ("id", pa.int64()),
            ("index", pa.int64()),
            ("item_sku", pa.string()),
            ("item_qty", pa.int64()),
            ("item_price", pa.float64()),
        ]
    )
    assert [(r["id"], r["index"]) for r in items.to_pylist()] == [(1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2)]
    assert result.dead_letters["step"].to_pylist() == ["decode"]
