"""Settings: read from STREAM_ETL_* variables at the edge; pass-through options parsed strictly."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from stream_etl.errors import ConfigurationError
from stream_etl.settings import Settings, parse_options, read_config_file


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("STREAM_ETL_"):
            monkeypatch.delenv(name)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("", {}, id="empty"),
        pytest.param("a=1", {"a": "1"}, id="one"),
        pytest.param("a=1,b=2", {"a": "1", "b": "2"}, id="two"),
        pytest.param(" a = 1 , b=2 ,", {"a": "1", "b": "2"}, id="spaces-and-trailing-comma"),
        pytest.param("a=", {"a": ""}, id="empty-value"),
        pytest.param("sasl.jaas=x=y", {"sasl.jaas": "x=y"}, id="equals-in-value"),
    ],
)
def test_parse_options(text: str, expected: dict[str, str]) -> None:
    assert parse_options(text) == expected


@pytest.mark.parametrize("text", [pytest.param("a", id="no-equals"), pytest.param("=1", id="no-key")])
def test_parse_options_refuses_items_that_are_not_key_value(text: str) -> None:
    with pytest.raises(ConfigurationError, match="is not key=value; expected a comma-separated list"):
        parse_options(text)


def test_defaults_do_not_read_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAM_ETL_KAFKA_BOOTSTRAP_SERVERS", "broker:9092")
    settings = Settings()

    assert settings.kafka_bootstrap_servers is None
    assert settings.kafka_config() == {}
    assert settings.s3_region == "us-east-1"
    assert settings.dev_dir == Path(".stream-etl/dev")
    assert settings.s3_storage_options() == {"conditional_put": "etag", "AWS_REGION": "us-east-1"}


def test_reads_prefixed_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAM_ETL_KAFKA_BOOTSTRAP_SERVERS", "broker:9092")
    monkeypatch.setenv("STREAM_ETL_KAFKA_OPTIONS", "security.protocol=SSL")
    monkeypatch.setenv("STREAM_ETL_KAFKA_CONSUMER_OPTIONS", "fetch.min.bytes=1")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "unprefixed:1")

    settings = Settings.from_environment()

    assert settings.kafka_bootstrap_servers == "broker:9092"
    assert settings.kafka_config() == {"security.protocol": "SSL"}
    assert settings.kafka_consumer_config() == {"fetch.min.bytes": "1"}


def test_s3_options_for_a_local_http_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAM_ETL_S3_ENDPOINT_URL", "http://127.0.0.1:8333")
    monkeypatch.setenv("STREAM_ETL_S3_ACCESS_KEY_ID", "key")
    monkeypatch.setenv("STREAM_ETL_S3_SECRET_ACCESS_KEY", "very-secret")
    monkeypatch.setenv("STREAM_ETL_S3_REGION", "eu-west-1")

    settings = Settings.from_environment()

    assert settings.s3_storage_options() == {
        "conditional_put": "etag",
        "AWS_REGION": "eu-west-1",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:8333",
        "AWS_ALLOW_HTTP": "true",
        "AWS_ACCESS_KEY_ID": "key",
        "AWS_SECRET_ACCESS_KEY": "very-secret",
    }


def test_an_https_endpoint_does_not_allow_http() -> None:
    options = Settings(s3_endpoint_url="https://s3.example.com").s3_storage_options()

    assert options["AWS_ENDPOINT_URL"] == "https://s3.example.com"
    assert "AWS_ALLOW_HTTP" not in options


def test_the_secret_key_is_not_shown() -> None:
    settings = Settings(s3_secret_access_key="very-secret")  # type: ignore[arg-type]

    assert "very-secret" not in repr(settings)
    assert "very-secret" not in str(settings.model_dump())


def test_a_bad_option_list_fails_when_used() -> None:
    settings = Settings(kafka_options="oops")

    with pytest.raises(ConfigurationError, match="'oops' is not key=value"):
        settings.kafka_config()


def test_kinesis_client_options_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAM_ETL_KINESIS_ENDPOINT_URL", "http://127.0.0.1:4567")
    monkeypatch.setenv("STREAM_ETL_KINESIS_ACCESS_KEY_ID", "key")
    monkeypatch.setenv("STREAM_ETL_KINESIS_SECRET_ACCESS_KEY", "very-secret")
    monkeypatch.setenv("STREAM_ETL_KINESIS_LEASE_URI", "s3://lake/leases")
    monkeypatch.setenv("STREAM_ETL_S3_REGION", "eu-west-1")

    settings = Settings.from_environment()

    assert settings.kinesis_client_options() == {
        "region_name": "eu-west-1",
        "endpoint_url": "http://127.0.0.1:4567",
        "aws_access_key_id": "key",
        "aws_secret_access_key": "very-secret",
    }
    assert settings.kinesis_lease_uri == "s3://lake/leases"
    assert "very-secret" not in repr(settings)
    assert Settings(kinesis_region="us-west-2").kinesis_client_options() == {"region_name": "us-west-2"}


def test_kafka_security_settings_become_librdkafka_options() -> None:
    settings = Settings.from_environment(
        {
            "STREAM_ETL_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "STREAM_ETL_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "STREAM_ETL_KAFKA_SASL_USERNAME": "etl",
            "STREAM_ETL_KAFKA_SASL_PASSWORD": "sasl-secret",
            "STREAM_ETL_KAFKA_SSL_CA_LOCATION": "/etc/ca.pem",
            "STREAM_ETL_KAFKA_SSL_CERTIFICATE_LOCATION": "/etc/client.pem",
            "STREAM_ETL_KAFKA_SSL_KEY_LOCATION": "/etc/client.key",
            "STREAM_ETL_KAFKA_SSL_KEY_PASSWORD": "key-secret",
            "STREAM_ETL_KAFKA_SSL_ENDPOINT_IDENTIFICATION_ALGORITHM": "none",
            "STREAM_ETL_KAFKA_OPTIONS": "socket.timeout.ms=5000",
        }
    )

    assert settings.kafka_config() == {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "etl",
        "sasl.password": "sasl-secret",
        "ssl.ca.location": "/etc/ca.pem",
        "ssl.certificate.location": "/etc/client.pem",
        "ssl.key.location": "/etc/client.key",
        "ssl.key.password": "key-secret",
        "ssl.endpoint.identification.algorithm": "none",
        "socket.timeout.ms": "5000",
    }
    for shown in (repr(settings), str(settings), str(settings.model_dump())):
        assert "sasl-secret" not in shown and "key-secret" not in shown


def test_secrets_in_pass_through_options_are_redacted_in_the_repr() -> None:
    settings = Settings(
        kafka_options="sasl.password=opt-secret,client.id=x", kafka_consumer_options="ssl.key.password=k2"
    )

    assert "opt-secret" not in repr(settings) and "k2" not in repr(settings)
    assert "sasl.password=***" in repr(settings) and "client.id=x" in repr(settings)
    assert settings.kafka_config()["sasl.password"] == "opt-secret"


def _config(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


def test_a_toml_config_file_is_read_under_the_environment(tmp_path: Path) -> None:
    path = _config(
        tmp_path / "etl.toml",
        'kafka_bootstrap_servers = "file:9092"\nSTREAM_ETL_KAFKA_SASL_PASSWORD = "from-file"\ns3_region = "eu-west-1"\n',
    )

    settings = Settings.from_environment({"STREAM_ETL_S3_REGION": "us-east-2"}, config=read_config_file(path))

    assert settings.kafka_bootstrap_servers == "file:9092"
    assert settings.kafka_config() == {"sasl.password": "from-file"}
    assert settings.s3_region == "us-east-2"  # the environment wins


def test_an_env_file_config_is_read(tmp_path: Path) -> None:
    path = _config(
        tmp_path / "etl.env",
        "# local stack\nexport STREAM_ETL_S3_SECRET_ACCESS_KEY='s3-secret'\nkafka_options=a=1,b=2\n",
    )

    values = read_config_file(path)

    assert values == {"s3_secret_access_key": "s3-secret", "kafka_options": "a=1,b=2"}


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660], ids=oct)
def test_a_config_file_others_can_read_is_refused(tmp_path: Path, mode: int) -> None:
    path = _config(tmp_path / "etl.toml", 's3_secret_access_key = "s3-secret"\n', mode)

    with pytest.raises(ConfigurationError, match=f"run: chmod 600 {path}") as caught:
        read_config_file(path)
    assert "s3-secret" not in str(caught.value)


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        pytest.param("etl.toml", 'kafka_pasword = "x"\n', "unknown setting 'kafka_pasword'", id="typo"),
        pytest.param("etl.toml", "kafka_options = [\n", "not valid TOML", id="bad-toml"),
        pytest.param("etl.env", "just words\n", "line 1: expected KEY=value", id="bad-env-line"),
    ],
)
def test_a_bad_config_file_fails_with_what_to_fix(tmp_path: Path, name: str, text: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        read_config_file(_config(tmp_path / name, text))


def test_a_missing_config_file_fails_clearly(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot read config file"):
        read_config_file(tmp_path / "absent.toml")
