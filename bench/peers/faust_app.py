"""Faust (faust-streaming) -> Delta: run by the suite with the peer's own virtualenv.

One worker, one agent on the topic (JSON values, parsed by Faust's orjson codec), batched with
``stream.take(batch_rows, within=1.0)`` as Faust documents for sinks. ``within`` is how long a
batch may wait: at Faust's rate here a batch holds a few thousand rows (``--set
faust.take_within_s=10`` makes fewer, larger commits, and the last one waits longer). Each
batch is filtered, derived and projected per record and written with ``write_deltalake`` in
the event loop's executor (Faust's advice for blocking calls), so fetching goes on meanwhile.
Faust consumes with aiokafka (pure Python), not librdkafka: the engine's fetch tuning maps only
to ``consumer_max_fetch_size`` (max.partition.fetch.bytes) and the stack's session and
heartbeat timeouts; aiokafka's fetch wait is fixed at 1.5 s by Faust (it only waits when no
data is there). ``stream_buffer_maxsize=131072`` is the throughput setting Faust's
documentation suggests; ``broker_check_crcs=False`` matches librdkafka's default. The worker
stops itself once the last expected row is written.
"""

from __future__ import annotations

import asyncio
import os
import threading
from typing import Any

import faust
from peer_common import DeltaWriter, keep, load_config, project


def main() -> None:
    config = load_config()
    kafka = config.kafka
    settings: dict[str, Any] = {
        "take_within_s": 1.0,
        "stream_buffer_maxsize": 131_072,
        "consumer_max_fetch_size": int(kafka.get("max.partition.fetch.bytes", 1024**2)),
        "broker_check_crcs": False,
        "consumer_auto_offset_reset": "earliest",
        "topic_disable_leader": True,
        "web_enabled": False,
        "store": "memory://",
        **config.settings,
    }
    if "session.timeout.ms" in kafka:
        settings["broker_session_timeout"] = int(kafka["session.timeout.ms"]) / 1000
    if "heartbeat.interval.ms" in kafka:
        settings["broker_heartbeat_interval"] = int(kafka["heartbeat.interval.ms"]) / 1000
    app_settings = {k: v for k, v in settings.items() if k != "take_within_s"}
    app = faust.App(config.group, broker=f"kafka://{config.bootstrap}", **app_settings)
    topic = app.topic(config.topic, value_serializer="json", partitions=config.partitions)
    writer = DeltaWriter(config)
    worker = faust.Worker(app, loglevel="WARNING", quiet=True)

    @app.agent(topic)
    async def orders(stream: Any) -> None:
        loop = asyncio.get_running_loop()
        async for values in stream.take(config.batch_rows, within=settings["take_within_s"]):
            rows = [project(order) for order in values if keep(order)]
            await loop.run_in_executor(None, writer.write_rows, rows)
            if writer.done:
                writer.report(settings=settings)
                # Stopping the worker from its own agent can hang on shutdown: give it 3 s.
                threading.Timer(3.0, os._exit, args=(0,)).start()
                asyncio.ensure_future(worker.stop())

    worker.execute_from_commandline()


if __name__ == "__main__":
    main()
