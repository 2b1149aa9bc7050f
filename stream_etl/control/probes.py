"""test-connection: really connect to what a connection points at.

Kafka: fetch cluster metadata; S3: list the bucket (or the buckets); Kinesis: list
streams (boto3, from the ``kinesis`` extra); Postgres: ``SELECT 1``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

from stream_etl.errors import ConfigurationError


def probe(connection: Any, *, timeout_s: float) -> str:
    from stream_etl.control.connections import KafkaConnection, KinesisConnection, PostgresConnection, S3Connection

    if isinstance(connection, KafkaConnection):
        return _kafka(connection, timeout_s)
    if isinstance(connection, S3Connection):
        return _s3(connection, timeout_s)
    if isinstance(connection, PostgresConnection):
        return _postgres(connection, timeout_s)
    if isinstance(connection, KinesisConnection):
        return _kinesis(connection, timeout_s)
    msg = f"test-connection does not support {type(connection).__name__} yet"
    raise ConfigurationError(msg)


def _kafka(connection: Any, timeout_s: float) -> str:
    from confluent_kafka.admin import AdminClient  # type: ignore[attr-defined]

    admin = AdminClient({**connection.client_config(), "socket.timeout.ms": int(timeout_s * 1000)})
    metadata = admin.list_topics(timeout=timeout_s)
    return f"Kafka reached: {len(metadata.brokers)} broker(s), {len(metadata.topics)} topic(s)"


def s3_filesystem(connection: Any, timeout_s: float) -> Any:
    """A pyarrow S3 filesystem for an S3 connection's fields."""
    import pyarrow.fs as pafs

    options: dict[str, Any] = {"region": connection.region, "connect_timeout": timeout_s, "request_timeout": timeout_s}
    if connection.endpoint_url:
        url = urlparse(connection.endpoint_url)
        options["endpoint_override"] = url.netloc
        options["scheme"] = url.scheme or "https"
    if connection.access_key_id:
        options["access_key"] = connection.access_key_id
        options["secret_key"] = connection.secret_access_key.get_secret_value() if connection.secret_access_key else ""
    else:
        options["anonymous"] = True
    return pafs.S3FileSystem(**options)


def _s3(connection: Any, timeout_s: float) -> str:
    import pyarrow.fs as pafs

    fs = s3_filesystem(connection, timeout_s)
    if connection.bucket:
        info = fs.get_file_info(connection.bucket)
        if info.type != pafs.FileType.Directory:
            msg = f"bucket {connection.bucket!r} not found"
            raise FileNotFoundError(msg)
        found = fs.get_file_info(pafs.FileSelector(connection.bucket, recursive=False))
        return f"S3 reached: bucket {connection.bucket} lists {len(found)} entr{'y' if len(found) == 1 else 'ies'}"
    buckets = fs.get_file_info(pafs.FileSelector("", recursive=False))
    return f"S3 reached: {len(buckets)} bucket(s)"


def _postgres(connection: Any, timeout_s: float) -> str:
    import psycopg

    with psycopg.connect(**connection.connect_kwargs(), connect_timeout=max(1, int(timeout_s))) as conn:
        row = conn.execute("SELECT 1, version()").fetchone()
    assert row is not None and row[0] == 1  # noqa: S101 - SELECT 1 answers 1
    return f"Postgres reached: {str(row[1]).split(' on ')[0]}"


def _kinesis(connection: Any, timeout_s: float) -> str:
    try:
        import boto3
        from botocore.config import Config
    except ImportError as exc:
        msg = "testing a Kinesis connection needs boto3: pip install 'stream-etl[kinesis]'"
        raise ConfigurationError(msg) from exc
    config = Config(connect_timeout=timeout_s, read_timeout=timeout_s, retries={"max_attempts": 1})
    client = boto3.client("kinesis", config=config, **connection.client_options())
    try:
        streams = client.list_streams(Limit=100)["StreamNames"]
    finally:
        client.close()
    return f"Kinesis reached: {len(streams)} stream(s)"
