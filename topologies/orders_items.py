"""Orders with line items, split into two Delta tables by ``relationalize``.

    stream-etl run topologies/orders_items.py --until-caught-up --arg base=s3://lake/shop

Each order's ``items`` array leaves the order row and becomes rows of a child table
keyed by the order ``id`` plus the item's ``index`` in the array. The parent and the
child are two sinks, each with its own stored positions, so each table gets every row
exactly once across crashes. Job arguments: ``topic`` (default order_items), ``base``
(table prefix, default s3://lake/shop), ``batch_records`` (default 100000).
"""

import pyarrow as pa

from connectors.delta import DeltaSink
from connectors.kafka import KafkaSource
from stream_etl import JsonFormat, Topology, job_args

ITEM = pa.struct([("sku", pa.string()), ("qty", pa.int64()), ("price", pa.float64())])
SCHEMA = pa.schema(
    [
        ("id", pa.int64()),
        ("customer", pa.struct([("name", pa.string()), ("email", pa.string())])),
        ("ts", pa.string()),
        ("items", pa.list_(ITEM)),
    ]
)

args = job_args(topic="order_items", base="s3://lake/shop", batch_records="100000")

topology = Topology(
    "orders_items",
    max_batch_records=int(args["batch_records"]),
    dead_letters=DeltaSink(f"{args['base']}/dead_letters"),
)
orders = topology.source(KafkaSource(args["topic"]), format=JsonFormat(SCHEMA))
parent, items = orders.relationalize("items", key="id", prefix="item_", name="split_items")
(
    parent.flatten(name="flatten")
    .hash("customer_email", salt="orders-demo", name="hash_email")
    .date_partitions("ts", parts=["year", "month"], name="partitions")
    .sink(DeltaSink(f"{args['base']}/orders"))
)
items.sink(DeltaSink(f"{args['base']}/order_items"))
