"""Clickstream: drop double clicks, then page views per user and page per minute.

    stream-etl run topologies/clickstream.py --until-caught-up --arg table=s3://lake/pageviews

A double click repeats a click id within a second: dedupe keeps the first (a one-minute
horizon bounds the state). The window step counts page views per user, page and minute,
emitted when the minute is over plus 5 s of allowed lateness. Key the topic by user.
Job arguments: ``topic`` (default clicks), ``table`` (default s3://lake/pageviews).
"""

from datetime import timedelta

from connectors.delta import DeltaSink
from connectors.kafka import KafkaSource
from stream_etl import JsonFormat, Topology, job_args
from stream_etl.samples import CLICK_SCHEMA

args = job_args(topic="clicks", table="s3://lake/pageviews")

topology = Topology("clickstream")
(
    topology.source(KafkaSource(args["topic"]), format=JsonFormat(CLICK_SCHEMA))
    .dedupe("click_id", time_column="ts", horizon=timedelta(minutes=1), name="double_clicks")
    .window(
        "ts",
        timedelta(minutes=1),
        group_by=["user", "page"],
        aggregates={"views": ("*", "count")},
        allowed_lateness=timedelta(seconds=5),
        name="views_per_minute",
    )
    .sink(DeltaSink(args["table"]))
)
