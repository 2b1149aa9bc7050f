"""Throttling and expired iterators, injected by an HTTP proxy in front of real kinesalite.

kinesalite neither throttles nor lets an iterator expire in test time (5 minutes), so a
small proxy answers some calls with the errors Kinesis sends, and forwards the rest.
"""

from __future__ import annotations

import http.client
import json
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from connectors.kinesis import KinesisSource
from connectors.kinesis.admin import create_stream, kinesis_client, put_records
from stream_etl import RunContext, Topology
from stream_etl.runloop import RunLoop
from stream_etl.samples import orders
from stream_etl.settings import Settings
from stream_etl.testing import MemorySink
from tests.services import KinesisService

#: (operation, how many calls of it so far) -> the error to answer, or None to forward.
Injector = Callable[[str, int], str | None]


class _Proxy(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, upstream: str, inject: Injector) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.upstream = urlparse(upstream)
        self.inject = inject
        self.calls: Counter[str] = Counter()
        self.injected: Counter[str] = Counter()
        self.lock = threading.Lock()


class _Handler(BaseHTTPRequestHandler):
    server: _Proxy

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        operation = str(self.headers.get("X-Amz-Target", "")).rsplit(".", 1)[-1]
        with self.server.lock:
            self.server.calls[operation] += 1
            error = self.server.inject(operation, self.server.calls[operation])
            if error:
                self.server.injected[error] += 1
        if error:
            self._answer(400, json.dumps({"__type": error, "message": "injected by the test proxy"}).encode(), {})
            return
        upstream = http.client.HTTPConnection(self.server.upstream.hostname, self.server.upstream.port, timeout=30)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
            upstream.request("POST", self.path, body=body, headers=headers)
            response = upstream.getresponse()
            data = response.read()
            self._answer(response.status, data, dict(response.getheaders()))
        finally:
            upstream.close()

    def _answer(self, status: int, data: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        self.send_header("Content-Type", headers.get("Content-Type", "application/x-amz-json-1.1"))
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-amzn-RequestId", headers.get("x-amzn-RequestId", "test"))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
        pass


@pytest.fixture
def proxy(kinesis: KinesisService) -> Iterator[Callable[[Injector], _Proxy]]:
    started: list[tuple[_Proxy, threading.Thread]] = []

    def start(inject: Injector) -> _Proxy:
        server = _Proxy(kinesis.endpoint, inject)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        started.append((server, thread))
        return server

    yield start
    for server, thread in started:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def _faults(operation: str, n: int) -> str | None:
    if operation == "GetRecords" and n % 7 in (2, 3):  # twice in a row: botocore's own retry fails too
        return "ProvisionedThroughputExceededException"
    if operation == "GetRecords" and n % 11 == 6:
        return "ExpiredIteratorException"
    if operation == "GetShardIterator" and n % 4 == 1:
        return "LimitExceededException"
    return None


def test_throttling_and_expired_iterators_lose_and_repeat_nothing(
    kinesis: KinesisService, proxy: Callable[[Injector], _Proxy], unique: str, tmp_path: Path
) -> None:
    client = kinesis_client(kinesis.endpoint)
    try:
        create_stream(client, unique, 2)
        put_records(client, unique, orders(3000))
    finally:
        client.close()
    server = proxy(_faults)
    endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    source = KinesisSource(
        unique,
        endpoint_url=endpoint,
        lease_uri=str(tmp_path / "leases"),
        max_records_per_call=100,  # many GetRecords calls, so many faults
        idle_poll=timedelta(milliseconds=20),
    )
    sink = MemorySink("out")
    topology = Topology("faults", dead_letters=MemorySink("dead"), max_batch_records=500)
    topology.source(source).sink(sink)
    settings = Settings.from_environment(kinesis.environment())

    summary = RunLoop(topology, RunContext(unique, settings=settings, mode="until_caught_up")).run()

    assert summary.caught_up
    assert sorted(sink.table()["id"].to_pylist()) == list(range(3000))
    assert server.injected["ProvisionedThroughputExceededException"] > 5
    assert server.injected["ExpiredIteratorException"] > 2
    assert server.injected["LimitExceededException"] >= 1
