"""Pathway -> Delta through a Python callback: run by the suite with the peer's own virtualenv.

Pathway's own Delta writer (``pw.io.deltalake.write``) needs a licence key, so the rows leave
through ``pw.io.subscribe``: ``on_change`` collects each row, ``on_time_end`` writes the
collected rows with ``write_deltalake`` once there are ``batch_rows`` of them, ``on_end`` writes
the rest. Reading, JSON parsing (``format="json"`` with a schema), the filter and the derived
column are Pathway's native (Rust) operators: ``pw.io.kafka.read`` with the engine's librdkafka
settings, ``filter``, ``select`` with ``num.round()``. One engine thread (PATHWAY_THREADS=1).
The read is ``mode="streaming"`` with the default ``autocommit_duration_ms=1500`` (Pathway
advances time in minibatches of that length): ``mode="static"`` would end at the high
watermark that ListOffsets answers, which Tansu understates (it read 8,271 of 20,000 records),
so the app ends the process itself (``os._exit``) once its last expected row is written.
"""

from __future__ import annotations

import os
from typing import Any

os.environ.setdefault("PATHWAY_THREADS", "1")

import pathway as pw  # noqa: E402 - PATHWAY_THREADS is read at import
from peer_common import DeltaWriter, PeerConfig, load_config  # noqa: E402


class Order(pw.Schema):
    #: ``id`` is reserved in Pathway (the row key): read as order_id, written back as id
    order_id: int
    user: str
    amount: float
    ts: str
    country: str
    tags: list[str]


def pipeline(config: PeerConfig) -> tuple[pw.Table, dict[str, Any]]:
    """The topic read with the engine's librdkafka options, filtered, derived and projected:
    Pathway's native operators. Also returns the settings used."""
    settings: dict[str, Any] = {
        "mode": "streaming",
        "autocommit_duration_ms": 1500,
        "threads": int(os.environ["PATHWAY_THREADS"]),
        **config.settings,
    }
    rdkafka = {
        **config.kafka,
        "bootstrap.servers": config.bootstrap,
        "group.id": config.group,
        "auto.offset.reset": "earliest",
    }
    orders = pw.io.kafka.read(
        rdkafka,
        config.topic,
        schema=Order,
        format="json",
        json_field_paths={"order_id": "/id"},
        mode=settings["mode"],
        autocommit_duration_ms=settings["autocommit_duration_ms"],
        max_backlog_size=settings.get("max_backlog_size"),
    )
    kept = orders.filter(pw.this.amount >= 0)
    out = kept.select(
        pw.this.order_id,
        pw.this.user,
        amount_cents=pw.cast(int, (pw.this.amount * 100).num.round()),
        country=pw.this.country,
        ts=pw.this.ts,
        tags=pw.this.tags,
    )
    return out, {**settings, "rdkafka": config.kafka}


def main() -> None:
    config = load_config()
    out, settings = pipeline(config)
    writer = DeltaWriter(config)
    rows: list[dict[str, Any]] = []

    def on_change(key: Any, row: dict[str, Any], time: int, is_addition: bool) -> None:
        if is_addition:
            rows.append(row)

    def flush() -> None:
        batch = [
            {
                "id": row["order_id"],
                "user": row["user"],
                "amount_cents": row["amount_cents"],
                "country": row["country"],
                "ts": row["ts"],
                "tags": list(row["tags"]),
            }
            for row in rows
        ]
        rows.clear()
        writer.write_rows(batch)

    def on_time_end(time: int) -> None:
        if len(rows) >= config.batch_rows or writer.written + len(rows) >= config.expected_rows:
            flush()
        if writer.done:  # a streaming read never ends by itself
            writer.report(settings=settings)
            os._exit(0)

    pw.io.subscribe(out, on_change=on_change, on_time_end=on_time_end, on_end=flush)
    pw.run(monitoring_level=pw.MonitoringLevel.NONE)
    writer.report(settings=settings)


if __name__ == "__main__":
    main()
