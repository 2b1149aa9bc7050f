"""The topology the connector contract suite runs in worker processes (tests/connectors/test_contract.py).

Job arguments: ``topic``, ``client`` (confluent or aiokafka), ``sink`` (delta, postgres,
parquet or kafka), ``target`` (table URI, table name, directory or topic), ``dsn`` (Postgres),
``batch_records``.
"""

from connectors.kafka import KafkaSource
from stream_etl import JsonFormat, Topology, job_args
from tests.connectors.contract_cases import CONTRACT_SCHEMA, build_sink

args = job_args(topic="orders", client="confluent", sink="delta", target="", dsn="", batch_records="500")

topology = Topology("contract", max_batch_records=int(args["batch_records"]))
(
    topology.source(
        KafkaSource(args["topic"], client=args["client"], assignment="direct"),  # type: ignore[arg-type]
        format=JsonFormat(CONTRACT_SCHEMA),
    )
    .select("id", "user", "amount", "country", name="project")
    .sink(build_sink(args["sink"], args["target"], dsn=args["dsn"]))
)
