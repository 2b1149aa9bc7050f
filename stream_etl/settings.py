"""Settings read from the environment (prefix ``STREAM_ETL_``), only at the edge.

The CLI builds one :class:`Settings` with :meth:`Settings.from_environment` and
passes it down in the run context; library code never reads environment variables
itself (``Settings()`` holds the defaults).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from stream_etl.errors import ConfigurationError


def parse_options(text: str) -> dict[str, str]:
    """``"a=1,b=2"`` -> ``{"a": "1", "b": "2"}`` (librdkafka-style pass-through options)."""
    options: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            msg = f"option {item!r} is not key=value; expected a comma-separated list such as 'a=1,b=2'"
            raise ConfigurationError(msg)
        options[key.strip()] = value.strip()
    return options


PREFIX = "STREAM_ETL_"


class Settings(BaseModel):
    """Where the services are and how to reach them."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    kafka_bootstrap_servers: str | None = Field(
        default=None, description="Kafka bootstrap servers, host:port[,host:port]"
    )
    kafka_options: str = Field(
        default="", description="librdkafka options for every Kafka client, 'key=value,key=value'"
    )
    kafka_consumer_options: str = Field(default="", description="librdkafka options for consumers only")
    kafka_client: Literal["confluent", "aiokafka"] = Field(
        default="confluent", description="Kafka client of KafkaSource when it names none: confluent or aiokafka"
    )
    s3_endpoint_url: str | None = Field(default=None, description="S3 endpoint (leave unset for AWS)")
    s3_access_key_id: str | None = None
    s3_secret_access_key: SecretStr | None = None
    s3_region: str = "us-east-1"
    postgres_dsn: SecretStr | None = Field(
        default=None, description="libpq connection string or URI for Postgres sinks (postgresql://user@host/db)"
    )
    dev_dir: Path = Field(default=Path(".stream-etl/dev"), description="state of `stream-etl dev`")

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Settings from ``STREAM_ETL_*`` variables (``os.environ`` by default)."""
        environ = os.environ if environ is None else environ
        names = set(cls.model_fields)
        values = {key[len(PREFIX) :].lower(): value for key, value in environ.items() if key.startswith(PREFIX)}
        try:
            return cls.model_validate({name: value for name, value in values.items() if name in names})
        except ValidationError as exc:
            error = exc.errors()[0]
            msg = f"{PREFIX}{str(error['loc'][0]).upper()}: {error['msg']}"
            raise ConfigurationError(msg) from exc

    def kafka_config(self) -> dict[str, str]:
        """Options for every Kafka client (security, timeouts)."""
        return parse_options(self.kafka_options)

    def kafka_consumer_config(self) -> dict[str, str]:
        return parse_options(self.kafka_consumer_options)

    def s3_storage_options(self) -> dict[str, str]:
        """object_store options for ``s3://`` URIs (delta-rs and friends)."""
        options = {"conditional_put": "etag", "AWS_REGION": self.s3_region}
        if self.s3_endpoint_url:
            options["AWS_ENDPOINT_URL"] = self.s3_endpoint_url
            if self.s3_endpoint_url.startswith("http://"):
                options["AWS_ALLOW_HTTP"] = "true"
        if self.s3_access_key_id:
            options["AWS_ACCESS_KEY_ID"] = self.s3_access_key_id
        if self.s3_secret_access_key is not None:
            options["AWS_SECRET_ACCESS_KEY"] = self.s3_secret_access_key.get_secret_value()
        return options
