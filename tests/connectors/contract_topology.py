"""The topology the connector contract suite runs in worker processes (tests/connectors/test_contract.py).

Job arguments: ``source`` (kafka or kinesis), ``topic`` (topic or stream), ``client`` (Kafka:
confluent or aiokafka), ``leases`` (Kinesis: lease directory), ``sink`` (delta, postgres,
parquet or kafka), ``target`` (table URI, table name, directory or topic), ``dsn`` (Postgres),
``batch_records``.
"""

from datetime import timedelta

from connectors.kafka import KafkaSource
from connectors.kinesis import KinesisSource
from stream_etl import JsonFormat, Topology, job_args
from stream_etl.sources import Source
from tests.connectors.contract_cases import CONTRACT_SCHEMA, build_sink

args = job_args(
    source="kafka", topic="orders", client="confluent", leases="", sink="delta", target="", dsn="", batch_records="500"
)
source: Source = (
    KinesisSource(args["topic"], lease_uri=args["leases"], idle_poll=timedelta(milliseconds=50))
    if args["source"] == "kinesis"
    else KafkaSource(args["topic"], client=args["client"], assignment="direct")  # type: ignore[arg-type]
)

topology = Topology("contract", max_batch_records=int(args["batch_records"]))
(
    topology.source(source, format=JsonFormat(CONTRACT_SCHEMA))
    .select("id", "user", "amount", "country", name="project")
    .sink(build_sink(args["sink"], args["target"], dsn=args["dsn"]))
)
