"""Pathway with its own CSV writer: run by the suite with the Pathway virtualenv.

Pathway's free native writers cannot write Delta (``pw.io.deltalake.write`` needs a licence
key); this variant measures the pipeline of ``pathway_app.py`` with the native
``pw.io.csv.write`` instead of a Python callback, into a local file (``output_path``), not the
S3 Delta table the others write: the figure shows Pathway without Python on its hot path, and is
labelled so in the results. The file gets Pathway's ``time`` and ``diff`` columns beside the
data, and ``order_id`` for ``id`` (a reserved name in Pathway).

A streaming read never ends, and the writer does not say when it has flushed, so a thread
watches the file (a ``stat`` every 50 ms, reading only what was appended): it notes when the
first data rows appear (and how many), and once the file holds every expected row it reports
the file's last modification time as the last write and ends the process.
"""

from __future__ import annotations

import json
import os
import threading
import time
from typing import Any

from pathway_app import pipeline, pw
from peer_common import REPORT_MARKER, PeerConfig, load_config

WATCH_INTERVAL_S = 0.05


class FileWatch(threading.Thread):
    def __init__(self, config: PeerConfig, settings: dict[str, Any]) -> None:
        super().__init__(name="csv-watch", daemon=True)
        self.config, self.settings = config, settings
        self.path = config.output_path

    def run(self) -> None:
        offset = lines = 0
        first_at: float | None = None
        first_rows = 0
        while True:
            time.sleep(WATCH_INTERVAL_S)
            try:
                size = os.stat(self.path).st_size
            except FileNotFoundError:
                continue
            if size <= offset:
                continue
            with open(self.path, "rb") as handle:
                handle.seek(offset)
                chunk = handle.read(size - offset)
            offset += len(chunk)
            lines += chunk.count(b"\n")
            rows = max(lines - 1, 0)  # the header
            if first_at is None and rows > 0:
                first_at, first_rows = time.time(), rows
            if rows >= self.config.expected_rows:
                self.report(rows, first_at, first_rows, os.stat(self.path).st_mtime)
                os._exit(0)

    def report(self, rows: int, first_at: float | None, first_rows: int, last_at: float) -> None:
        line = {
            "written": rows,
            "first_write_at": first_at,
            "first_rows": first_rows,
            "last_write_at": last_at,
            "reported_at": time.time(),
            "settings": {**self.settings, "writer": "pw.io.csv.write", "output_path": self.path},
        }
        print(REPORT_MARKER + json.dumps(line), flush=True)


def main() -> None:
    config = load_config()
    if not config.output_path:
        raise SystemExit("pathway_csv_app needs output_path in its configuration")
    out, settings = pipeline(config)
    pw.io.csv.write(out, config.output_path)
    FileWatch(config, settings).start()
    pw.run(monitoring_level=pw.MonitoringLevel.NONE)


if __name__ == "__main__":
    main()
