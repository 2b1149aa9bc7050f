"""Wide events (~2 KB, 50 columns) into Delta: the benchmark's wide-record scenario.

    stream-etl run topologies/wide_events.py --until-caught-up --arg topic=wide --arg table=s3://lake/wide

Job arguments: ``topic`` (default wide), ``table`` (default s3://lake/wide),
``batch_records`` (default 50000: wide records fill a batch's bytes sooner).
"""

from connectors.delta import DeltaSink
from connectors.kafka import KafkaSource
from stream_etl import JsonFormat, Topology, job_args
from stream_etl.samples import WIDE_SCHEMA

args = job_args(topic="wide", table="s3://lake/wide", batch_records="50000")

topology = Topology("wide_events", max_batch_records=int(args["batch_records"]))
(
    topology.source(KafkaSource(args["topic"]), format=JsonFormat(WIDE_SCHEMA))
    .filter("count_00 >= 0", name="valid")
    .derive("metric_total", "metric_00 + metric_01 + metric_02", name="metric_total")
    .sink(DeltaSink(args["table"]))
)
