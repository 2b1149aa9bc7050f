"""The local kinesalite that the tests, `dev up --kinesis` and the bench start."""

from __future__ import annotations

import socket
import struct

from connectors.kinesis.admin import kinesis_client
from tests.services import KinesisService


def test_a_client_gone_mid_request_does_not_take_kinesalite_down(kinesis: KinesisService) -> None:
    """A worker SIGKILLed while sending leaves a half-sent request: kinesalite used to crash on it."""
    host, port = kinesis.endpoint.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: kinesis\r\nContent-Length: 1000\r\n\r\n{")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close with a reset

    client = kinesis_client(kinesis.endpoint)
    try:
        assert "StreamNames" in client.list_streams()
    finally:
        client.close()
