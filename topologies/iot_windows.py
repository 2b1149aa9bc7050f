"""IoT readings: drop retransmitted duplicates, then per-device one-minute windows.

    stream-etl run topologies/iot_windows.py --until-caught-up --arg table=s3://lake/iot

Readings arrive out of order and some very late; retransmissions repeat a reading id.
Dedupe keeps the first of each reading id within ten minutes of event time; the window
step emits, per device and minute, the count, mean and max temperature once the
watermark passes the minute's end plus 10 s of allowed lateness. Readings later than that
are dead-lettered as LateEvent. The topic must be keyed by device (one device, one
partition): state and windows are per partition. Job arguments: ``topic`` (default
readings), ``table`` (default s3://lake/iot), ``batch_records`` (default 100000).
"""

from datetime import timedelta

from connectors.delta import DeltaSink
from connectors.kafka import KafkaSource
from stream_etl import JsonFormat, Topology, job_args
from stream_etl.samples import READING_SCHEMA

args = job_args(topic="readings", table="s3://lake/iot", batch_records="100000")

topology = Topology("iot_windows", max_batch_records=int(args["batch_records"]))
(
    topology.source(KafkaSource(args["topic"]), format=JsonFormat(READING_SCHEMA))
    .dedupe("reading_id", time_column="ts", horizon=timedelta(minutes=10), name="retransmissions")
    .window(
        "ts",
        timedelta(minutes=1),
        group_by=["device"],
        aggregates={
            "readings": ("*", "count"),
            "mean_temperature": ("temperature", "mean"),
            "max_temperature": ("temperature", "max"),
        },
        allowed_lateness=timedelta(seconds=10),
        name="per_minute",
    )
    .sink(DeltaSink(args["table"]))
)
