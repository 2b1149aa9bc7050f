"""Secrets never reach logs or errors of a real run; the local services listen on loopback only."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from connectors.kafka.admin import produce
from stream_etl.samples import orders
from tests.e2e.workers import assert_same_orders, read_table, start_worker
from tests.services import Services

pytestmark = pytest.mark.timeout(300)


def _secrets() -> dict[str, str]:
    token = uuid.uuid4().hex
    return {
        "STREAM_ETL_S3_SECRET_ACCESS_KEY": f"s3-{token}",
        "STREAM_ETL_KAFKA_SASL_PASSWORD": f"sasl-{token}",
        "STREAM_ETL_KAFKA_SSL_KEY_PASSWORD": f"tls-{token}",
    }


def _outputs(log: Path) -> str:
    return log.read_text(errors="replace") + log.with_suffix(".out").read_text(errors="replace")


def test_a_debug_run_with_secrets_never_prints_them(
    services: Services, topic: Callable[..., str], table_uri: str, unique: str, tmp_path: Path
) -> None:
    name = topic(partitions=2)
    produce(services.kafka_bootstrap, name, orders(2_000, bad_every=100))
    secrets = _secrets()
    del secrets["STREAM_ETL_S3_SECRET_ACCESS_KEY"]  # S3 checks signatures: the services' real secret is used
    config = tmp_path / "etl.env"  # the SASL password comes from a config file, the rest from the environment
    config.write_text(f"STREAM_ETL_KAFKA_SASL_PASSWORD={secrets.pop('STREAM_ETL_KAFKA_SASL_PASSWORD')}\n")
    config.chmod(0o600)
    env = {
        **secrets,
        "STREAM_ETL_CONFIG": str(config),
        "STREAM_ETL_LOG_LEVEL": "DEBUG",
        "STREAM_ETL_KAFKA_SECURITY_PROTOCOL": "PLAINTEXT",  # Tansu here serves neither TLS nor SASL
        "STREAM_ETL_KAFKA_SASL_USERNAME": "etl",
    }
    log = tmp_path / "w.log"

    process = start_worker(
        services, app_id=unique, args={"topic": name, "table": table_uri}, log=log, until_caught_up=True, extra_env=env
    )

    assert process.wait(timeout=180) == 0, log.read_text()[-3000:]
    assert_same_orders(read_table(table_uri, services), [i for i in range(2_000) if i % 100 != 99])
    output = _outputs(log)
    assert "DEBUG" in output  # the run really logged at debug level
    sasl_password = config.read_text().split("=", 1)[1].strip()
    for secret in [services.secret_key, sasl_password, secrets["STREAM_ETL_KAFKA_SSL_KEY_PASSWORD"]]:
        assert secret not in output


def test_a_failing_run_does_not_print_its_secrets(
    services: Services, topic: Callable[..., str], table_uri: str, unique: str, tmp_path: Path
) -> None:
    """A wrong S3 secret (signatures fail), then SASL against a broker without it: both runs fail
    with an error; their output holds no secret."""
    name = topic(partitions=1)
    secrets = _secrets()
    produce(services.kafka_bootstrap, name, orders(100))
    log = tmp_path / "s3.log"
    process = start_worker(
        services,
        app_id=unique,
        args={"topic": name, "table": table_uri},
        log=log,
        until_caught_up=True,
        extra_env={**secrets, "STREAM_ETL_LOG_LEVEL": "DEBUG"},
    )
    assert process.wait(timeout=180) != 0
    output = _outputs(log)
    assert "SignatureDoesNotMatch" in output
    assert all(secret not in output for secret in secrets.values())

    env = {
        **secrets,
        "STREAM_ETL_LOG_LEVEL": "DEBUG",
        "STREAM_ETL_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "STREAM_ETL_KAFKA_SASL_MECHANISM": "PLAIN",
        "STREAM_ETL_KAFKA_SASL_USERNAME": "etl",
        "STREAM_ETL_KAFKA_OPTIONS": f"socket.connection.setup.timeout.ms=2000,sasl.oauthbearer.config=x{uuid.uuid4().hex}",
    }
    log = tmp_path / "w.log"

    process = start_worker(
        services, app_id=unique, args={"topic": name, "table": table_uri}, log=log, until_caught_up=True, extra_env=env
    )

    assert process.wait(timeout=180) != 0
    output = _outputs(log)
    assert "error" in output.lower()
    for secret in secrets.values():
        assert secret not in output


def test_the_local_services_listen_on_loopback_only(services: Services) -> None:
    children = psutil.Process(os.getpid()).children(recursive=True)
    listening = [
        (child.name(), conn.laddr)
        for child in children
        for conn in child.net_connections(kind="inet")
        if conn.status == psutil.CONN_LISTEN
    ]
    assert any(str(address.port) in services.kafka_bootstrap for _name, address in listening)
    assert any(str(address.port) in services.s3_endpoint for _name, address in listening)
    assert all(address.ip == "127.0.0.1" for _name, address in listening), listening
