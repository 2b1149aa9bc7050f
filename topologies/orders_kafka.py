"""Orders from one Kafka topic to another, transformed, exactly once through Kafka transactions.

    stream-etl dev up
    stream-etl produce orders --count 20000
    stream-etl run topologies/orders_kafka.py --until-caught-up --arg out=orders_clean

Each batch's rows (JSON, keyed by order id) and the source offsets (in the compacted
topic ``<out>.stream-etl-positions``) are written in one transaction, so a
``read_committed`` consumer of ``out`` sees every order once across crashes. Bad records
go to the dead-letter queue ``<out>.dead-letters`` (raw bytes, error headers). One worker
per job (``assignment=direct``). Job arguments: ``topic`` (default orders), ``out``
(default orders_clean), ``batch_records`` (default 100000).
"""

from connectors.kafka import KafkaSink, KafkaSource
from stream_etl import JsonFormat, Topology, job_args
from stream_etl.samples import ORDER_SCHEMA

args = job_args(topic="orders", out="orders_clean", batch_records="100000")

topology = Topology("orders_kafka", max_batch_records=int(args["batch_records"]))
(
    topology.source(KafkaSource(args["topic"], assignment="direct"), format=JsonFormat(ORDER_SCHEMA))
    .filter("amount >= 0", name="valid_amount")
    .derive("amount_cents", "CAST(round(amount * 100) AS BIGINT)", name="amount_cents")
    .select("id", "user", "amount_cents", "country", "ts", "tags", name="project")
    .sink(KafkaSink(args["out"], key="id"))
)
