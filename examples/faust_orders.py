"""A Faust app that hands its ``orders`` stream to stream-etl: filtered into a Delta table, exactly once.

    stream-etl dev up
    stream-etl produce orders --count 10000 --bad-every 1000
    PYTHONPATH=. python examples/faust_orders.py worker --loglevel info
    stream-etl table show s3://lake/faust_orders

The agent (connectors/faust) takes the events with their offsets, batches them into Arrow,
runs the topology's steps and commits rows and offsets to the sink together. Restarting the
app, or starting it under another Faust app name (a new consumer group that reads from the
beginning), adds nothing to the table: records at or below the stored offsets are skipped.

Settings: the usual ``STREAM_ETL_*`` variables (broker, S3), and ``STREAM_ETL_FAUST_APP``
(Faust app and consumer group name), ``STREAM_ETL_FAUST_TOPIC``, ``STREAM_ETL_FAUST_TABLE``,
``STREAM_ETL_FAUST_APP_ID`` (keys the positions stored in the table),
``STREAM_ETL_FAUST_BATCH_RECORDS`` (records per micro-batch), and ``STREAM_ETL_FAULT`` (a crash
point for tests, as for `stream-etl run`: stream_etl/faults.py).
"""

import os

import faust

from connectors.delta import DeltaSink
from connectors.faust import FaustSource, stream_etl_agent
from stream_etl import JsonFormat, Topology, faults
from stream_etl.samples import ORDER_SCHEMA
from stream_etl.settings import Settings, parse_options

settings = Settings.from_environment()
batch_records = int(os.environ.get("STREAM_ETL_FAUST_BATCH_RECORDS", "10000"))
if os.environ.get("STREAM_ETL_FAULT"):
    faults.arm(os.environ["STREAM_ETL_FAULT"])
consumer = parse_options(settings.kafka_consumer_options)
app = faust.App(
    os.environ.get("STREAM_ETL_FAUST_APP", "faust-orders"),
    broker=f"kafka://{settings.kafka_bootstrap_servers or '127.0.0.1:9092'}",
    store="memory://",
    web_enabled=False,
    topic_disable_leader=True,
    broker_commit_interval=float(os.environ.get("STREAM_ETL_FAUST_COMMIT_INTERVAL", "1.0")),
    # Tansu (the dev broker) holds a group join for session.timeout / 2 (docs/ARCHITECTURE.md).
    broker_session_timeout=int(consumer.get("session.timeout.ms", "45000")) / 1000,
    broker_heartbeat_interval=int(consumer.get("heartbeat.interval.ms", "3000")) / 1000,
)
orders = app.topic(os.environ.get("STREAM_ETL_FAUST_TOPIC", "orders"), value_type=bytes, value_serializer="raw")

topology = Topology("faust-orders", max_batch_records=batch_records)
(
    topology.source(FaustSource(), format=JsonFormat(ORDER_SCHEMA))
    .filter("amount >= 0", name="valid_amount")
    .derive("amount_cents", "CAST(round(amount * 100) AS BIGINT)", name="amount_cents")
    .select("id", "user", "amount_cents", "country", "ts", "tags", name="project")
    .sink(DeltaSink(os.environ.get("STREAM_ETL_FAUST_TABLE", "s3://lake/faust_orders")))
)
agent = stream_etl_agent(
    app,
    orders,
    topology,
    app_id=os.environ.get("STREAM_ETL_FAUST_APP_ID", "faust-orders"),
    max_batch_records=batch_records,
    settings=settings,
)

if __name__ == "__main__":
    app.main()
