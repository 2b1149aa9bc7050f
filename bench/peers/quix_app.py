"""Quix Streams (quixstreams) -> Delta: run by the suite with the peer's own virtualenv.

One Application, one StreamingDataFrame: ``filter`` then ``apply`` (derive and project) per
record (Quix's API is per record), and a custom sink (subclass of ``BaseSink``) that buffers the rows between checkpoints
and writes them with one ``write_deltalake`` call per checkpoint (``BatchingSink`` would write
one commit per topic partition). Checkpoints every ``commit_every`` records (default 100,000,
the engine's batch) or ``commit_interval`` seconds (Quix's default 5 s). The sink stops the
app once the last expected row is in its buffer; ``run()`` then commits a final checkpoint,
which writes it.
"""

from __future__ import annotations

from typing import Any

from peer_common import DeltaWriter, keep, load_config, project
from quixstreams import Application
from quixstreams.sinks import BaseSink


class DeltaSink(BaseSink):
    def __init__(self, writer: DeltaWriter) -> None:
        super().__init__()
        self.writer = writer
        self.rows: list[dict[str, Any]] = []
        self.app: Application | None = None

    def add(self, value: Any, key: Any, timestamp: int, headers: Any, topic: str, partition: int, offset: int) -> None:
        self.rows.append(value)
        if self.writer.written + len(self.rows) >= self.writer.config.expected_rows and self.app is not None:
            self.app.stop()

    def flush(self) -> None:
        rows, self.rows = self.rows, []
        self.writer.write_rows(rows)


def main() -> None:
    config = load_config()
    settings = {
        "commit_every": config.batch_rows,
        "commit_interval": 5.0,
        "processing_guarantee": "at-least-once",
        "use_changelog_topics": False,
        "auto_offset_reset": "earliest",
        **config.settings,
    }
    app = Application(
        broker_address=config.bootstrap,
        consumer_group=config.group,
        consumer_extra_config=dict(config.kafka),
        loglevel="WARNING",
        **settings,
    )
    writer = DeltaWriter(config)
    sink = DeltaSink(writer)
    sink.app = app
    sdf = app.dataframe(app.topic(config.topic, value_deserializer="json"))
    sdf = sdf.filter(keep).apply(project)
    sdf.sink(sink)
    app.run()
    writer.report(settings={**settings, "consumer_extra_config": config.kafka})


if __name__ == "__main__":
    main()
