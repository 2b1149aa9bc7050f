"""The real services the tests talk to, behind one function each mode shares.

``STREAM_ETL_TEST_SERVICES`` picks where they come from:

- ``local`` (default): Tansu and SeaweedFS started by the test session as child
  processes on free loopback ports (the same code as `stream-etl dev up`).
- ``external``: endpoints already running, from ``STREAM_ETL_TEST_KAFKA_BOOTSTRAP``
  and ``STREAM_ETL_TEST_S3_ENDPOINT`` (+ ``_S3_ACCESS_KEY``, ``_S3_SECRET_KEY``,
  ``_S3_BUCKET``, and ``_KAFKA_CONSUMER_OPTIONS``).
- ``testcontainers``: apache/kafka and MinIO containers, on machines with Docker.
"""

from __future__ import annotations

import os
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from stream_etl.devstack import DUMMY_KEY, DUMMY_SECRET, TANSU_CONSUMER_OPTIONS, DevStack, free_port
from stream_etl.errors import ServiceError
from stream_etl.settings import Settings

#: Attempts to start a stack on freshly chosen ports.
PORT_ATTEMPTS = 3


@dataclass(frozen=True)
class Services:
    kafka_bootstrap: str
    s3_endpoint: str
    bucket: str
    access_key: str
    secret_key: str
    consumer_options: str = ""

    def environment(self) -> dict[str, str]:
        """What a worker process needs in its environment."""
        return {
            "STREAM_ETL_KAFKA_BOOTSTRAP_SERVERS": self.kafka_bootstrap,
            "STREAM_ETL_KAFKA_CONSUMER_OPTIONS": self.consumer_options,
            "STREAM_ETL_S3_ENDPOINT_URL": self.s3_endpoint,
            "STREAM_ETL_S3_ACCESS_KEY_ID": self.access_key,
            "STREAM_ETL_S3_SECRET_ACCESS_KEY": self.secret_key,
            "STREAM_ETL_S3_REGION": "us-east-1",
        }

    def settings(self) -> Settings:
        return Settings.from_environment(self.environment())

    def storage_options(self) -> dict[str, str]:
        return self.settings().s3_storage_options()


@dataclass(frozen=True)
class KinesisService:
    endpoint: str

    def environment(self) -> dict[str, str]:
        """What a worker process needs to reach it (kinesalite takes any keys)."""
        return {
            "STREAM_ETL_KINESIS_ENDPOINT_URL": self.endpoint,
            "STREAM_ETL_KINESIS_REGION": "us-east-1",
            "STREAM_ETL_KINESIS_ACCESS_KEY_ID": "local",
            "STREAM_ETL_KINESIS_SECRET_ACCESS_KEY": "local",
        }


@contextmanager
def running_kinesis(state_dir: Path) -> Iterator[KinesisService]:
    """kinesalite on a free loopback port (``STREAM_ETL_TEST_KINESIS_ENDPOINT``: one running)."""
    external = os.environ.get("STREAM_ETL_TEST_KINESIS_ENDPOINT")
    if external:
        yield KinesisService(external)
        return
    from connectors.kinesis.local import Kinesalite

    with Kinesalite(free_port(), log=state_dir / "kinesalite.log") as kinesalite:
        yield KinesisService(kinesalite.endpoint)


@contextmanager
def running_services(state_dir: Path) -> Iterator[Services]:
    mode = os.environ.get("STREAM_ETL_TEST_SERVICES", "local")
    if mode == "external":
        yield _external()
    elif mode == "testcontainers":
        with _containers() as services:
            yield services
    elif mode == "local":
        with own_stack(state_dir) as (_, services):
            yield services
    else:
        msg = f"STREAM_ETL_TEST_SERVICES={mode!r}: use local, external or testcontainers"
        raise ValueError(msg)


@contextmanager
def own_stack(state_dir: Path, *, kafka_advertised_port: int | None = None) -> Iterator[tuple[DevStack, Services]]:
    """A broker and S3 on free loopback ports: the session's (one per xdist worker), or a test's
    own, for tests that stop or cut them (outages)."""
    for attempt in range(1, PORT_ATTEMPTS + 1):
        stack = DevStack(
            state_dir,
            kafka_port=free_port(),
            s3_port=free_port(),
            bucket="tests",
            die_with_parent=True,
            kafka_advertised_port=kafka_advertised_port,
        )
        try:
            state = stack.up(timeout_s=120)
        except ServiceError:
            # Another process (a parallel test worker, a client's ephemeral port) took a port
            # between choosing it and binding it: choose again.
            if attempt == PORT_ATTEMPTS:
                raise
            continue
        break
    try:
        yield (
            stack,
            Services(
                state.kafka_bootstrap, state.s3_endpoint, state.bucket, DUMMY_KEY, DUMMY_SECRET, TANSU_CONSUMER_OPTIONS
            ),
        )
    finally:
        stack.down(grace_s=1.0)


def _external() -> Services:
    env = os.environ
    return Services(
        kafka_bootstrap=env["STREAM_ETL_TEST_KAFKA_BOOTSTRAP"],
        s3_endpoint=env["STREAM_ETL_TEST_S3_ENDPOINT"],
        bucket=env.get("STREAM_ETL_TEST_S3_BUCKET", "tests"),
        access_key=env.get("STREAM_ETL_TEST_S3_ACCESS_KEY", DUMMY_KEY),
        secret_key=env.get("STREAM_ETL_TEST_S3_SECRET_KEY", DUMMY_SECRET),
        consumer_options=env.get("STREAM_ETL_TEST_KAFKA_CONSUMER_OPTIONS", ""),
    )


@contextmanager
def _containers() -> Iterator[Services]:  # pragma: no cover - needs a Docker engine
    from testcontainers.kafka import KafkaContainer
    from testcontainers.minio import MinioContainer

    with KafkaContainer("apache/kafka:3.9.1").with_kraft() as kafka, MinioContainer() as minio:
        client = minio.get_client()
        client.make_bucket("tests")
        config = minio.get_config()
        endpoint = f"http://{config['endpoint']}"
        with urllib.request.urlopen(endpoint + "/minio/health/live", timeout=10):  # noqa: S310
            pass
        yield Services(kafka.get_bootstrap_server(), endpoint, "tests", config["access_key"], config["secret_key"])


def drop_postgres_table(dsn: str, name: str) -> None:
    """Drop a test's Postgres table, its dead-letter table and its rows of the positions table
    (created first when missing: a fresh database has none until a sink opens)."""
    import psycopg
    from psycopg import sql

    from connectors.postgres.config import POSITIONS_TABLE
    from connectors.postgres.positions import PositionsTable

    with psycopg.connect(dsn, autocommit=True) as conn:
        PositionsTable(sql.Identifier(POSITIONS_TABLE), "", "").create(conn)
        conn.execute(f'DROP TABLE IF EXISTS "{name}", "{name}_dead_letters"')
        conn.execute(f"DELETE FROM {POSITIONS_TABLE} WHERE target_table LIKE %s", (f"public.{name}%",))
