"""What every peer app shares. It runs inside the peer's own virtualenv (python3.11 with the
peer, pyarrow, deltalake and orjson), so it imports nothing from stream-etl or bench.

Each app is started by ``bench.peers.suite`` as ``<venv>/bin/python bench/peers/<peer>_app.py
--config '<json>'``. It reads the topic from the beginning, keeps orders with ``amount >= 0``,
derives ``amount_cents`` (SQL rounding: half away from zero), projects :data:`COLUMNS`, writes
the rows to the Delta table in batches of ``batch_rows`` and stops once it has written
``expected_rows``. Its last stdout line is a JSON report.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

#: Starts the report line on stdout.
REPORT_MARKER = "PEER-REPORT "

#: The projection every peer writes, in this order (the engine's topologies/orders.py).
COLUMNS = ("id", "user", "amount_cents", "country", "ts", "tags")

OUTPUT_SCHEMA = pa.schema(
    [
        ("id", pa.int64()),
        ("user", pa.string()),
        ("amount_cents", pa.int64()),
        ("country", pa.string()),
        ("ts", pa.string()),
        ("tags", pa.list_(pa.string())),
    ]
)


def amount_cents(amount: float) -> int:
    """``CAST(round(amount * 100) AS BIGINT)``: ties away from zero, like SQL and Arrow's
    ``half_towards_infinity`` (Python's ``round`` rounds ties to even)."""
    scaled = amount * 100
    magnitude = abs(scaled)
    floor = math.floor(magnitude)
    rounded = floor + 1 if magnitude - floor >= 0.5 else floor
    return int(rounded if scaled >= 0 else -rounded)


def keep(order: dict[str, Any]) -> bool:
    """The filter: ``amount >= 0`` (a missing amount is dropped, as SQL drops NULL)."""
    amount = order["amount"]
    return amount is not None and amount >= 0


def project(order: dict[str, Any]) -> dict[str, Any]:
    """Derive ``amount_cents`` and keep :data:`COLUMNS`."""
    return {
        "id": order["id"],
        "user": order["user"],
        "amount_cents": amount_cents(order["amount"]),
        "country": order["country"],
        "ts": order["ts"],
        "tags": order["tags"],
    }


def transform(order: dict[str, Any]) -> dict[str, Any] | None:
    """Filter, derive and project in one call: the projected row, or ``None`` when the filter
    drops the order (for APIs with a filter-map step)."""
    return project(order) if keep(order) else None


@dataclass(frozen=True)
class PeerConfig:
    """What the suite passes to an app (one JSON argument)."""

    bootstrap: str
    topic: str
    partitions: int
    table: str
    storage_options: dict[str, str]
    #: librdkafka options (the engine's tuned fetch settings and the stack's options)
    kafka: dict[str, str]
    group: str
    expected_rows: int
    batch_rows: int = 100_000
    #: where a peer that writes files (not Delta) puts them
    output_path: str = ""
    settings: dict[str, Any] = field(default_factory=dict)


def load_config(argv: list[str] | None = None) -> PeerConfig:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", required=True, help="JSON object with the fields of PeerConfig")
    args = parser.parse_args(argv)
    return PeerConfig(**json.loads(args.config))


class DeltaWriter:
    """Appends batches to the Delta table with ``write_deltalake`` (one commit per call)."""

    def __init__(self, config: PeerConfig) -> None:
        self.config = config
        self.written = 0
        self.commits = 0
        self.write_s = 0.0
        self.first_commit_at: float | None = None
        self.last_commit_at: float | None = None

    @property
    def done(self) -> bool:
        return self.written >= self.config.expected_rows

    def write_rows(self, rows: list[dict[str, Any]]) -> None:
        if rows:
            self.write_table(pa.Table.from_pylist(rows, schema=OUTPUT_SCHEMA))

    def write_table(self, table: pa.Table) -> None:
        from deltalake import CommitProperties, write_deltalake

        if table.num_rows == 0:
            return
        started = time.perf_counter()
        written = self.written + table.num_rows
        write_deltalake(
            self.config.table,
            table,
            mode="append",
            storage_options=self.config.storage_options,
            commit_properties=CommitProperties(custom_metadata={"bench.rows": str(written)}),
        )
        self.write_s += time.perf_counter() - started
        self.written = written
        self.commits += 1
        self.last_commit_at = time.time()
        if self.first_commit_at is None:
            self.first_commit_at = self.last_commit_at

    def report(self, **extra: Any) -> None:
        """The app's report, read by the suite (``sys.__stdout__``: Faust replaces ``sys.stdout``)."""
        line = {
            "written": self.written,
            "commits": self.commits,
            "write_s": round(self.write_s, 3),
            "first_commit_at": self.first_commit_at,
            "last_commit_at": self.last_commit_at,
            "reported_at": time.time(),
            **extra,
        }
        out = sys.__stdout__ or sys.stdout
        out.write(REPORT_MARKER + json.dumps(line) + "\n")
        out.flush()
