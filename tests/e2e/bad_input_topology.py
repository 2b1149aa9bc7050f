"""The bad-input corpus's topology: Kafka (with keys, headers, offsets) -> Delta, with or without a schema.

Job arguments: ``topic``, ``table``, ``schema`` (``yes`` for tests/bad_input.py's SCHEMA, ``no`` to infer).
"""

from connectors.delta import DeltaSink
from connectors.kafka import KafkaSource
from stream_etl import JsonFormat, Topology, job_args
from tests.bad_input import SCHEMA

args = job_args(topic="bad-input", table="s3://lake/bad-input", schema="yes")

topology = Topology("bad_input")
(
    topology.source(
        KafkaSource(args["topic"], metadata=("partition", "offset", "key", "headers")),
        format=JsonFormat(SCHEMA if args["schema"] == "yes" else None),
    ).sink(DeltaSink(args["table"]))
)
