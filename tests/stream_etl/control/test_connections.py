from __future__ import annotations

import os
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import text

from stream_etl.control.connections import Connections, KafkaConnection
from stream_etl.control.errors import AlreadyExists, NotFound
from stream_etl.control.secrets import MASK, SecretBox, new_key_file, read_key_file
from stream_etl.control.store import Store
from stream_etl.errors import ConfigurationError
from tests.services import KinesisService, Services

PASSWORD = "pw-Zq81-very-secret"


@pytest.fixture
def box() -> SecretBox:
    return SecretBox(Fernet.generate_key())


def test_secrets_are_encrypted_at_rest_and_masked(store: Store, box: SecretBox) -> None:
    connections = Connections(store, box)
    info = connections.create(
        "prod-kafka",
        "kafka",
        {
            "bootstrap_servers": "broker:9093",
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": "SCRAM-SHA-512",
            "sasl_username": "etl",
            "sasl_password": PASSWORD,
        },
    )
    assert info.fields["sasl_password"] == MASK
    assert "ssl_key_password" not in info.fields  # unset secrets are not pretended
    assert PASSWORD not in repr(connections.get("prod-kafka")) + repr(connections.list_all())
    with store.engine.connect() as connection:
        stored = connection.execute(text("SELECT config, secrets FROM connections")).one()
    assert PASSWORD not in str(stored[0]) and PASSWORD not in stored[1]
    assert stored[1].startswith("gAAAA")  # a Fernet token
    resolved = connections.resolve("prod-kafka")
    assert isinstance(resolved, KafkaConnection)
    assert resolved.sasl_password is not None and resolved.sasl_password.get_secret_value() == PASSWORD
    env = connections.environment(["prod-kafka"])
    assert env["STREAM_ETL_KAFKA_BOOTSTRAP_SERVERS"] == "broker:9093"
    assert f"sasl.password={PASSWORD}" in env["STREAM_ETL_KAFKA_OPTIONS"]
    assert "security.protocol=sasl_ssl" in env["STREAM_ETL_KAFKA_OPTIONS"]
    with pytest.raises(AlreadyExists):
        connections.create("prod-kafka", "kafka", {"bootstrap_servers": "x:1"})
    with pytest.raises(ConfigurationError, match="a different key|cannot be decrypted"):
        Connections(store, SecretBox(Fernet.generate_key())).resolve("prod-kafka")
    connections.delete("prod-kafka")
    with pytest.raises(NotFound):
        connections.get("prod-kafka")


def test_bad_fields_fail_with_what_to_fix(store: Store, box: SecretBox) -> None:
    connections = Connections(store, box)
    with pytest.raises(ConfigurationError, match="kind 'ftp' is not known"):
        connections.create("x", "ftp", {})
    with pytest.raises(ConfigurationError, match="bootstrap_servers"):
        connections.create("x", "kafka", {})
    with pytest.raises(ConfigurationError, match="cannot contain ','"):
        connections.create("x", "kafka", {"bootstrap_servers": "b:1", "sasl_password": "a,b"})
    with pytest.raises(ConfigurationError, match="no encryption key"):
        Connections(store, None).create("x", "s3", {})


def test_one_connection_per_kind_in_a_job_environment(store: Store, box: SecretBox) -> None:
    connections = Connections(store, box)
    connections.create(
        "a", "s3", {"endpoint_url": "http://127.0.0.1:1", "secret_access_key": "k", "access_key_id": "i"}
    )
    connections.create("b", "s3", {})
    connections.create("pg", "postgres", {"password": PASSWORD})
    env = connections.environment(["a", "pg"])
    assert env["STREAM_ETL_S3_SECRET_ACCESS_KEY"] == "k" and env["PGPASSWORD"] == PASSWORD
    with pytest.raises(ConfigurationError, match="one connection per kind"):
        connections.environment(["a", "b"])


def test_key_files_must_be_private(tmp_path: Path) -> None:
    path = new_key_file(tmp_path / "keys" / "control.key")
    assert (path.stat().st_mode & 0o777) == 0o600
    SecretBox(read_key_file(path))
    with pytest.raises(ConfigurationError, match="exists"):
        new_key_file(path)
    os.chmod(path, 0o644)
    with pytest.raises(ConfigurationError, match=f"chmod 600 {path}"):
        SecretBox.from_settings(key=None, key_file=path)
    with pytest.raises(ConfigurationError, match="new-key"):
        read_key_file(tmp_path / "missing.key")
    with pytest.raises(ConfigurationError, match="not a Fernet key"):
        SecretBox("short")


def test_test_connection_really_connects(store: Store, box: SecretBox, services: Services) -> None:
    connections = Connections(store, box)
    connections.create("kafka", "kafka", {"bootstrap_servers": services.kafka_bootstrap})
    s3 = {
        "endpoint_url": services.s3_endpoint,
        "access_key_id": services.access_key,
        "secret_access_key": services.secret_key,
    }
    connections.create("s3", "s3", {**s3, "bucket": services.bucket})
    connections.create("s3-missing", "s3", {**s3, "bucket": "no-such-bucket-here"})
    connections.create("pg", "postgres", {"database": "test", "password": PASSWORD})
    connections.create("pg-down", "postgres", {"port": 1, "password": PASSWORD})

    kafka = connections.test("kafka")
    assert kafka.ok and "broker" in kafka.message
    s3_result = connections.test("s3")
    assert s3_result.ok, s3_result.message
    missing = connections.test("s3-missing")
    assert not missing.ok and "no-such-bucket-here" in missing.message
    pg = connections.test("pg")
    assert pg.ok and "PostgreSQL" in pg.message
    down = connections.test("pg-down", timeout_s=3)
    assert not down.ok and PASSWORD not in down.message


def test_test_connection_reaches_kinesis(store: Store, box: SecretBox, kinesis: KinesisService) -> None:
    connections = Connections(store, box)
    connections.create(
        "streams",
        "kinesis",
        {"endpoint_url": kinesis.endpoint, "access_key_id": "local", "secret_access_key": PASSWORD},
    )
    result = connections.test("streams")
    assert result.ok, result.message
    assert result.message.startswith("Kinesis reached")
    env = connections.environment(["streams"])
    assert env["STREAM_ETL_KINESIS_ENDPOINT_URL"] == kinesis.endpoint
    assert env["STREAM_ETL_KINESIS_SECRET_ACCESS_KEY"] == PASSWORD
    connections.create("nowhere", "kinesis", {"endpoint_url": "http://127.0.0.1:1", "secret_access_key": PASSWORD})
    failed = connections.test("nowhere", timeout_s=2)
    assert not failed.ok and PASSWORD not in failed.message
