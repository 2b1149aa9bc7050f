"""Avro events in the Confluent wire format (schema id per record), into a Delta table.

    stream-etl run topologies/avro_events.py --arg topic=events --arg table=s3://lake/events \\
        --arg schemas=schemas/ --until-caught-up

Writer schemas are read by id from ``<schemas>/<id>.avsc``. A producer that moves to a newer
schema (a field added) gets a new column under the default ``schema_mode="merge"``; records
with a bad magic byte or an unknown schema id are dead-lettered (docs/FORMATS.md).
"""

from connectors.delta import DeltaSink
from connectors.kafka import KafkaSource
from stream_etl import Topology, job_args
from stream_etl.formats import ConfluentAvroFormat, DirectoryResolver

args = job_args(topic="events", table="s3://lake/events", schemas="schemas", schema_mode="merge", batch_records="10000")

topology = Topology("avro_events", max_batch_records=int(args["batch_records"]))
(
    topology.source(KafkaSource(args["topic"]), format=ConfluentAvroFormat(DirectoryResolver(args["schemas"]))).sink(
        DeltaSink(args["table"], schema_mode=args["schema_mode"])
    )  # type: ignore[arg-type]
)
