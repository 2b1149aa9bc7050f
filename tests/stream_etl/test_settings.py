"""Settings: read from STREAM_ETL_* variables at the edge; pass-through options parsed strictly."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from stream_etl.errors import ConfigurationError
from stream_etl.settings import Settings, parse_options


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
