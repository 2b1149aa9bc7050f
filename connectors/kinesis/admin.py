"""Small Kinesis helpers for tests, the bench and examples: create a stream, put records."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

from stream_etl.errors import SourceUnavailable

try:
    import boto3
except ImportError as exc:  # pragma: no cover - depends on the install
    msg = "the Kinesis connector needs boto3: pip install 'stream-etl[kinesis]'"
    raise ImportError(msg) from exc

#: PutRecords takes at most 500 records per call.
PUT_LIMIT = 500


def kinesis_client(endpoint_url: str | None = None, region: str = "us-east-1", **options: Any) -> Any:
    """A boto3 Kinesis client; with an endpoint (kinesalite) and no keys, dummy keys."""
    if endpoint_url and "aws_access_key_id" not in options:
        options.update(aws_access_key_id="local", aws_secret_access_key="local")  # noqa: S106 - kinesalite
    return boto3.client("kinesis", endpoint_url=endpoint_url, region_name=region, **options)


def wait_active(client: Any, stream: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        status = client.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]["StreamStatus"]
        if status == "ACTIVE":
            return
        if time.monotonic() > deadline:
            msg = f"Kinesis stream {stream} is still {status} after {timeout_s}s"
            raise SourceUnavailable(msg, stream=stream)
        time.sleep(0.05)


def create_stream(client: Any, stream: str, shards: int) -> None:
    """Create ``stream`` with ``shards`` shards (if missing) and wait until it is active."""
    try:
        client.create_stream(StreamName=stream, ShardCount=shards)
    except client.exceptions.ResourceInUseException:
        pass
    wait_active(client, stream)


def put_records(
    client: Any, stream: str, values: Iterable[bytes], *, keys: Sequence[str] | None = None, start: int = 0
) -> int:
    """Put ``values`` in order of calls, 500 per PutRecords, retrying failed entries.

    The partition key of value *i* is ``keys[i]`` or ``str(start + i)``. Returns the count."""
    batch: list[dict[str, Any]] = []
    count = 0
    for i, value in enumerate(values):
        key = keys[i] if keys is not None else str(start + i)
        batch.append({"Data": value, "PartitionKey": key})
        if len(batch) == PUT_LIMIT:
            _put(client, stream, batch)
            count += len(batch)
            batch = []
    if batch:
        _put(client, stream, batch)
        count += len(batch)
    return count


def _put(client: Any, stream: str, entries: list[dict[str, Any]]) -> None:
    delay = 0.05
    for _ in range(30):
        response = client.put_records(StreamName=stream, Records=entries)
        if not response.get("FailedRecordCount"):
            return
        # Retrying only the failed entries would reorder a key's records: retry from the first failure.
        first = next(i for i, r in enumerate(response["Records"]) if "ErrorCode" in r)
        entries = entries[first:]
        time.sleep(delay)
        delay = min(delay * 2, 2.0)
    msg = f"PutRecords to {stream} kept failing"
    raise SourceUnavailable(msg, stream=stream)
