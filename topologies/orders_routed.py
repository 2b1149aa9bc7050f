"""One topic routed by amount to three Delta tables; bad records to the dead-letter table.

    stream-etl run topologies/orders_routed.py --until-caught-up --arg base=s3://lake/routed

Each branch is its own sink with its own stored positions, committed before the first
(primary) sink, so every row lands exactly once in the right table across crashes.
Job arguments: ``topic`` (default orders), ``base`` (table prefix, default s3://lake/routed),
``batch_records`` (default 100000).
"""

from connectors.delta import DeltaSink
from connectors.kafka import KafkaSource
from stream_etl import JsonFormat, Topology, job_args
from stream_etl.samples import ORDER_SCHEMA

args = job_args(topic="orders", base="s3://lake/routed", batch_records="100000")

topology = Topology(
    "orders_routed",
    max_batch_records=int(args["batch_records"]),
    dead_letters=DeltaSink(f"{args['base']}/dead_letters"),
)
orders = (
    topology.source(KafkaSource(args["topic"]), format=JsonFormat(ORDER_SCHEMA))
    .filter("amount >= 0", name="valid_amount")
    .derive("amount_cents", "CAST(round(amount * 100) AS BIGINT)", name="amount_cents")
    .select("id", "user", "amount_cents", "country", name="project")
)
orders.filter("amount_cents < 10000", name="small").sink(DeltaSink(f"{args['base']}/small"))
orders.filter("amount_cents >= 10000 AND amount_cents < 30000", name="medium").sink(DeltaSink(f"{args['base']}/medium"))
orders.filter("amount_cents >= 30000", name="large").sink(DeltaSink(f"{args['base']}/large"))
