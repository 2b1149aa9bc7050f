"""Orders from Kafka into a Delta table on S3, partitioned by country.

    stream-etl dev up
    stream-etl produce orders --count 20000 --bad-every 1000
    stream-etl run topologies/orders.py --until-caught-up
    stream-etl table show s3://lake/orders

Job arguments (``--arg key=value``): ``topic`` (default orders), ``table``
(default s3://lake/orders), ``batch_records`` (records per micro-batch, default 100000),
``partition_by`` (comma-separated partition columns, default country; empty for none),
``assignment`` (``group``: join the consumer group, the default and how workers scale out;
``direct``: one worker assigned every partition, no group join),
``max_commit_retries`` (delta-rs conflict retries per commit when other jobs write the
same table; default delta-rs's 15).
"""

from connectors.delta import DeltaSink
from connectors.kafka import KafkaSource
from stream_etl import JsonFormat, Topology, job_args
from stream_etl.samples import ORDER_SCHEMA

args = job_args(
    topic="orders",
    table="s3://lake/orders",
    batch_records="100000",
    partition_by="country",
    assignment="group",
    max_commit_retries="",
)

topology = Topology("orders", max_batch_records=int(args["batch_records"]))
(
    topology.source(KafkaSource(args["topic"], assignment=args["assignment"]), format=JsonFormat(ORDER_SCHEMA))
    .filter("amount >= 0", name="valid_amount")
    .derive("amount_cents", "CAST(round(amount * 100) AS BIGINT)", name="amount_cents")
    .select("id", "user", "amount_cents", "country", "ts", "tags", name="project")
    .sink(
        DeltaSink(
            args["table"],
            partition_by=[c for c in args["partition_by"].split(",") if c],
            max_commit_retries=int(args["max_commit_retries"]) if args["max_commit_retries"] else None,
        )
    )
)
