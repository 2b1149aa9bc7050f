"""Order updates from Kafka upserted into a Postgres table (one row per order id).

    stream-etl dev up
    stream-etl produce orders --count 20000
    stream-etl run topologies/orders_postgres.py --until-caught-up \
        --arg dsn=postgresql://postgres@127.0.0.1:5432/test
    psql postgresql://postgres@127.0.0.1:5432/test -c 'SELECT count(*) FROM orders'

Each batch is loaded with COPY and upserted on ``id``; the Kafka offsets are stored in
the ``stream_etl_positions`` table in the same transaction, so a crash at any instant
neither loses nor re-applies an update. Bad records go to ``<table>_dead_letters``.
Job arguments: ``topic`` (default orders), ``table`` (default orders), ``dsn`` (default
the ``STREAM_ETL_POSTGRES_DSN`` setting), ``mode`` (upsert or append, default upsert),
``batch_records`` (default 100000), ``assignment`` (group or direct, default group).
"""

from connectors.kafka import KafkaSource
from connectors.postgres import PostgresSink
from stream_etl import JsonFormat, Topology, job_args
from stream_etl.samples import ORDER_SCHEMA

args = job_args(topic="orders", table="orders", dsn="", mode="upsert", batch_records="100000", assignment="group")

topology = Topology("orders_postgres", max_batch_records=int(args["batch_records"]))
(
    topology.source(KafkaSource(args["topic"], assignment=args["assignment"]), format=JsonFormat(ORDER_SCHEMA))
    .filter("amount >= 0", name="valid_amount")
    .derive("amount_cents", "CAST(round(amount * 100) AS BIGINT)", name="amount_cents")
    .select("id", "user", "amount_cents", "country", "ts", "tags", name="project")
    .sink(
        PostgresSink(
            args["table"],
            dsn=args["dsn"] or None,
            mode=args["mode"],  # type: ignore[arg-type]
            key=["id"] if args["mode"] == "upsert" else [],
        )
    )
)
