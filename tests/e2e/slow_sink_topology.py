"""Sample orders (with partition and offset columns) into a Delta table whose commits are slowed down.

For the shutdown and backpressure tests: each commit to the table first sleeps
``commit_delay_s``, like a sink that cannot keep up. Job arguments: ``topic``,
``table``, ``commit_delay_s`` (default 0), ``fast_commits`` (commits made before the
delay starts, default 0), ``batch_records`` (default 100000), ``max_batch_bytes`` (default 64 MiB),
``max_in_flight_bytes`` (default: the engine's), ``prefetch_batches`` (default 1).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from connectors.delta import DeltaSink
from connectors.delta.sink import DeltaWriter
from connectors.kafka import KafkaSource
from stream_etl import JsonFormat, RunContext, Topology, job_args
from stream_etl.samples import ORDER_SCHEMA

args = job_args(
    topic="orders",
    table="s3://lake/slow",
    commit_delay_s="0",
    fast_commits="0",
    batch_records="100000",
    max_batch_bytes=str(64 << 20),
    max_in_flight_bytes="",
    prefetch_batches="1",
)


log = logging.getLogger("stream_etl.slow_sink")


class SlowDeltaWriter(DeltaWriter):
    commits = 0

    def stager(self, *stage_args: Any) -> None:
        """Nothing is written ahead: every batch goes through the slow commit()."""
        return None

    def commit(self, *commit_args: Any, **kwargs: Any) -> Any:
        if self.commits >= int(args["fast_commits"]):
            log.info("slow commit %d: sleeping %s s", self.commits + 1, args["commit_delay_s"])
            time.sleep(float(args["commit_delay_s"]))
        self.commits += 1
        return super().commit(*commit_args, **kwargs)


class SlowDeltaSink(DeltaSink):
    def open(self, ctx: RunContext) -> DeltaWriter:
        return SlowDeltaWriter(self, ctx)


topology = Topology(
    "slow_sink",
    max_batch_records=int(args["batch_records"]),
    max_batch_bytes=int(args["max_batch_bytes"]),
    max_in_flight_bytes=int(args["max_in_flight_bytes"]) if args["max_in_flight_bytes"] else None,
    prefetch_batches=int(args["prefetch_batches"]),
)
(
    topology.source(KafkaSource(args["topic"], metadata=("partition", "offset")), format=JsonFormat(ORDER_SCHEMA))
    .select("id", "_partition", "_offset", name="project")
    .sink(SlowDeltaSink(args["table"]))
)
