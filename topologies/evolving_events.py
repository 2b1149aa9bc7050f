"""Events whose shape changes over time, into a Delta table under a schema policy.

    stream-etl run topologies/evolving_events.py --arg topic=events --arg table=s3://lake/events \\
        --arg schema_mode=strict --arg rescue_column=_rescued --until-caught-up

The JSON format infers types per batch, so a field a producer adds shows up as a new
column of the batch; the sink's ``schema_mode`` decides what the table does with it
(docs/FORMATS.md, "Schema evolution").
"""

from connectors.delta import DeltaSink
from connectors.kafka import KafkaSource
from stream_etl import JsonFormat, Topology, job_args

args = job_args(topic="events", table="s3://lake/events", schema_mode="merge", rescue_column="", batch_records="10000")

topology = Topology("evolving_events", max_batch_records=int(args["batch_records"]))
(
    topology.source(KafkaSource(args["topic"]), format=JsonFormat()).sink(
        DeltaSink(
            args["table"],
            schema_mode=args["schema_mode"],  # type: ignore[arg-type]
            rescue_column=args["rescue_column"] or None,
        )
    )
)
