"""Settings read from the environment (prefix ``STREAM_ETL_``) and a config file, only at the edge.

The CLI builds one :class:`Settings` with :meth:`Settings.from_environment` (the
environment over an optional ``--config`` file, see :func:`read_config_file`) and
passes it down in the run context; library code never reads environment variables
itself (``Settings()`` holds the defaults).

Secrets (the S3 secret key, the SASL password, the TLS key's password) are
``SecretStr``: their repr, ``str`` and ``model_dump()`` show ``**********``; the
value is read only where a client is configured. Pass-through option lists are
shown with secret-looking keys redacted. See docs/SECURITY.md.
"""

from __future__ import annotations

import os
import stat
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

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


def switched_off(variable: str) -> bool:
    """Whether the environment turns an on-by-default switch off (``0``, ``false``, ``no``, ``off``):
    for the native fast paths, which have no place in :class:`Settings`' run context."""
    return os.environ.get(variable, "1").strip().lower() in ("0", "false", "no", "off")


_SECRET_WORDS = ("password", "secret", "token", "key.pem", "sasl.oauthbearer.config", "sasl.jaas.config")


def redact_options(text: str) -> str:
    """A ``key=value`` list with the values of secret-looking keys replaced, for display."""
    parts = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, _value = item.partition("=")
        parts.append(f"{key}=***" if sep and any(w in key.lower() for w in _SECRET_WORDS) else item)
    return ",".join(parts)


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
    kafka_security_protocol: str | None = Field(
        default=None, description="librdkafka security.protocol: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"
    )
    kafka_sasl_mechanism: str | None = Field(
        default=None, description="librdkafka sasl.mechanism: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 ..."
    )
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_ca_location: str | None = Field(default=None, description="CA bundle that signed the brokers' certs")
    kafka_ssl_certificate_location: str | None = Field(default=None, description="client certificate (mutual TLS)")
    kafka_ssl_key_location: str | None = Field(default=None, description="client private key (mutual TLS)")
    kafka_ssl_key_password: SecretStr | None = None
    kafka_ssl_endpoint_identification_algorithm: str | None = Field(
        default=None, description="'https' (default: check the broker's host name) or 'none'"
    )
    s3_endpoint_url: str | None = Field(default=None, description="S3 endpoint (leave unset for AWS)")
    s3_access_key_id: str | None = None
    s3_secret_access_key: SecretStr | None = None
    s3_region: str = "us-east-1"
    sink_retry_timeout_s: float = Field(
        default=600.0,
        gt=0,
        description=(
            "how long a sink may keep failing transiently (S3 unreachable, other jobs' commits) "
            "before the run stops; retries back off from 0.2 s to 10 s"
        ),
    )
    kinesis_endpoint_url: str | None = Field(default=None, description="Kinesis endpoint (leave unset for AWS)")
    kinesis_region: str | None = Field(default=None, description="Kinesis region (default: the S3 region)")
    kinesis_access_key_id: str | None = None
    kinesis_secret_access_key: SecretStr | None = None
    kinesis_lease_uri: str | None = Field(
        default=None, description="where Kinesis workers keep shard leases: s3://bucket/prefix or a directory"
    )
    postgres_dsn: SecretStr | None = Field(
        default=None, description="libpq connection string or URI for Postgres sinks (postgresql://user@host/db)"
    )
    dev_dir: Path = Field(default=Path(".stream-etl/dev"), description="state of `stream-etl dev`")

    @classmethod
    def from_environment(
        cls, environ: Mapping[str, str] | None = None, *, config: Mapping[str, str] | None = None
    ) -> Settings:
        """Settings from ``STREAM_ETL_*`` variables (``os.environ`` by default) over ``config``
        (the values of a config file, from :func:`read_config_file`)."""
        environ = os.environ if environ is None else environ
        names = set(cls.model_fields)
        values = {key[len(PREFIX) :].lower(): value for key, value in environ.items() if key.startswith(PREFIX)}
        merged = {**(config or {}), **{name: value for name, value in values.items() if name in names}}
        try:
            return cls.model_validate(merged)
        except ValidationError as exc:
            error = exc.errors()[0]
            msg = f"{PREFIX}{str(error['loc'][0]).upper()}: {error['msg']}"
            raise ConfigurationError(msg) from exc

    def __repr_args__(self) -> Any:
        for name, value in super().__repr_args__():
            yield name, redact_options(value) if name in ("kafka_options", "kafka_consumer_options") else value

    def kafka_config(self) -> dict[str, str]:
        """Options for every Kafka client: security settings, then ``kafka_options`` over them."""
        security = {
            "security.protocol": self.kafka_security_protocol,
            "sasl.mechanism": self.kafka_sasl_mechanism,
            "sasl.username": self.kafka_sasl_username,
            "sasl.password": _reveal(self.kafka_sasl_password),
            "ssl.ca.location": self.kafka_ssl_ca_location,
            "ssl.certificate.location": self.kafka_ssl_certificate_location,
            "ssl.key.location": self.kafka_ssl_key_location,
            "ssl.key.password": _reveal(self.kafka_ssl_key_password),
            "ssl.endpoint.identification.algorithm": self.kafka_ssl_endpoint_identification_algorithm,
        }
        return {**{k: v for k, v in security.items() if v is not None}, **parse_options(self.kafka_options)}

    def kafka_consumer_config(self) -> dict[str, str]:
        return parse_options(self.kafka_consumer_options)

    def kinesis_client_options(self) -> dict[str, str]:
        """Keyword arguments for ``boto3.client("kinesis", ...)`` (unset keys: boto3's own chain)."""
        options = {"region_name": self.kinesis_region or self.s3_region}
        if self.kinesis_endpoint_url:
            options["endpoint_url"] = self.kinesis_endpoint_url
        if self.kinesis_access_key_id:
            options["aws_access_key_id"] = self.kinesis_access_key_id
        if self.kinesis_secret_access_key is not None:
            options["aws_secret_access_key"] = self.kinesis_secret_access_key.get_secret_value()
        return options

    def s3_client_options(self) -> dict[str, str]:
        """Keyword arguments for ``boto3.client("s3", ...)``."""
        options = {"region_name": self.s3_region}
        if self.s3_endpoint_url:
            options["endpoint_url"] = self.s3_endpoint_url
        if self.s3_access_key_id:
            options["aws_access_key_id"] = self.s3_access_key_id
        if self.s3_secret_access_key is not None:
            options["aws_secret_access_key"] = self.s3_secret_access_key.get_secret_value()
        return options

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


def _reveal(secret: SecretStr | None) -> str | None:
    return secret.get_secret_value() if secret is not None else None


def read_config_file(path: Path) -> dict[str, str]:
    """Settings from a config file: TOML (``*.toml``) or an env file (``KEY=value`` lines).

    Keys are settings names, with or without the ``STREAM_ETL_`` prefix, in any case
    (``kafka_sasl_password``, ``STREAM_ETL_KAFKA_SASL_PASSWORD``). The file may hold
    secrets, so it is refused unless only its owner can read it (``chmod 600``).
    """
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        msg = f"cannot read config file {path}: {exc.strerror}"
        raise ConfigurationError(msg) from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        msg = (
            f"config file {path} is readable by other users (mode {stat.filemode(mode)}) and may hold secrets; "
            f"run: chmod 600 {path}"
        )
        raise ConfigurationError(msg)
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".toml":
        try:
            raw: dict[str, Any] = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            msg = f"config file {path} is not valid TOML: {exc}"
            raise ConfigurationError(msg) from exc
    else:
        raw = {}
        for number, line in enumerate(text.splitlines(), start=1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            key, sep, value = line.removeprefix("export ").partition("=")
            if not sep:
                msg = f"{path}, line {number}: expected KEY=value"
                raise ConfigurationError(msg)
            raw[key.strip()] = value.strip().strip("\"'")
    names = set(Settings.model_fields)
    values: dict[str, str] = {}
    for key, value in raw.items():
        name = key.lower().removeprefix(PREFIX.lower())
        if name not in names or isinstance(value, dict | list):
            msg = f"config file {path}: unknown setting {key!r}; known: {sorted(names)}"
            raise ConfigurationError(msg)
        values[name] = str(value)
    return values
