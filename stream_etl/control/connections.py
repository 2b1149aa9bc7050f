"""Connections: how jobs reach Kafka, Kinesis/AWS, S3 and Postgres, with secrets encrypted.

A connection is one pydantic model per kind; its ``SecretStr`` fields are the
secrets. They are stored as one Fernet token (:mod:`stream_etl.control.secrets`),
the other fields as JSON. What leaves the store for people (CLI, API, logs) is
:class:`ConnectionInfo`, with every secret replaced by ``********``; only
:meth:`Connections.environment` (a job's worker processes) and
:meth:`Connections.test` see the plaintext.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from sqlalchemy import select

from stream_etl.control.catalog import check_name
from stream_etl.control.models import Connection
from stream_etl.control.secrets import MASK, SecretBox
from stream_etl.control.store import Store, by_name
from stream_etl.errors import ConfigurationError

log = logging.getLogger(__name__)

#: Key in a connection's stored config listing which secrets it has (their values are in the token).
_SECRET_NAMES = "_secrets"  # noqa: S105 - a key name, not a secret

Kind = Literal["kafka", "kinesis", "s3", "postgres"]


class _Fields(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def environment(self) -> dict[str, str]:
        raise NotImplementedError


class KafkaConnection(_Fields):
    bootstrap_servers: str
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_ca_location: str | None = None
    ssl_certificate_location: str | None = None
    ssl_key_location: str | None = None
    ssl_key_password: SecretStr | None = None
    #: Further librdkafka options, passed through untouched.
    options: dict[str, str] = Field(default_factory=dict)

    @field_validator("sasl_password", "ssl_key_password")
    @classmethod
    def _no_comma(cls, value: SecretStr | None) -> SecretStr | None:
        # Workers get librdkafka options as one 'k=v,k=v' variable (STREAM_ETL_KAFKA_OPTIONS).
        if value is not None and "," in value.get_secret_value():
            msg = "Kafka secrets cannot contain ',' (workers receive them in a comma-separated option list)"
            raise ValueError(msg)
        return value

    def client_config(self) -> dict[str, str]:
        """librdkafka settings (with the secrets)."""
        config = {**self.options, "bootstrap.servers": self.bootstrap_servers}
        config["security.protocol"] = self.security_protocol.lower()
        pairs = {
            "sasl.mechanism": self.sasl_mechanism,
            "sasl.username": self.sasl_username,
            "sasl.password": self.sasl_password.get_secret_value() if self.sasl_password else None,
            "ssl.ca.location": self.ssl_ca_location,
            "ssl.certificate.location": self.ssl_certificate_location,
            "ssl.key.location": self.ssl_key_location,
            "ssl.key.password": self.ssl_key_password.get_secret_value() if self.ssl_key_password else None,
        }
        config.update({k: v for k, v in pairs.items() if v})
        return config

    def environment(self) -> dict[str, str]:
        config = self.client_config()
        bootstrap = config.pop("bootstrap.servers")
        return {
            "STREAM_ETL_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "STREAM_ETL_KAFKA_OPTIONS": ",".join(f"{k}={v}" for k, v in config.items()),
        }


class S3Connection(_Fields):
    endpoint_url: str | None = None
    region: str = "us-east-1"
    access_key_id: str | None = None
    secret_access_key: SecretStr | None = None
    #: The bucket test-connection lists (all buckets when unset).
    bucket: str | None = None

    def environment(self) -> dict[str, str]:
        env = {"STREAM_ETL_S3_REGION": self.region}
        if self.endpoint_url:
            env["STREAM_ETL_S3_ENDPOINT_URL"] = self.endpoint_url
        if self.access_key_id:
            env["STREAM_ETL_S3_ACCESS_KEY_ID"] = self.access_key_id
        if self.secret_access_key:
            env["STREAM_ETL_S3_SECRET_ACCESS_KEY"] = self.secret_access_key.get_secret_value()
        return env


class KinesisConnection(_Fields):
    region: str = "us-east-1"
    endpoint_url: str | None = None
    access_key_id: str | None = None
    secret_access_key: SecretStr | None = None
    session_token: SecretStr | None = None

    def client_options(self) -> dict[str, str]:
        """Keyword arguments for ``boto3.client("kinesis", ...)``."""
        options = {"region_name": self.region}
        if self.endpoint_url:
            options["endpoint_url"] = self.endpoint_url
        if self.access_key_id:
            options["aws_access_key_id"] = self.access_key_id
        if self.secret_access_key:
            options["aws_secret_access_key"] = self.secret_access_key.get_secret_value()
        if self.session_token:
            options["aws_session_token"] = self.session_token.get_secret_value()
        return options

    def environment(self) -> dict[str, str]:
        """The engine's Kinesis settings (``STREAM_ETL_KINESIS_*``); a session token goes to boto3's chain."""
        env = {"STREAM_ETL_KINESIS_REGION": self.region}
        if self.endpoint_url:
            env["STREAM_ETL_KINESIS_ENDPOINT_URL"] = self.endpoint_url
        if self.access_key_id:
            env["STREAM_ETL_KINESIS_ACCESS_KEY_ID"] = self.access_key_id
        if self.secret_access_key:
            env["STREAM_ETL_KINESIS_SECRET_ACCESS_KEY"] = self.secret_access_key.get_secret_value()
        if self.session_token:
            env["AWS_SESSION_TOKEN"] = self.session_token.get_secret_value()
        return env


class PostgresConnection(_Fields):
    host: str = "127.0.0.1"
    port: int = 5432
    database: str = "postgres"
    user: str = "postgres"
    password: SecretStr | None = None
    sslmode: str | None = None

    def connect_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"host": self.host, "port": self.port, "dbname": self.database, "user": self.user}
        if self.password:
            kwargs["password"] = self.password.get_secret_value()
        if self.sslmode:
            kwargs["sslmode"] = self.sslmode
        return kwargs

    def environment(self) -> dict[str, str]:
        """libpq's variables: psycopg and every Postgres client read them."""
        env = {"PGHOST": self.host, "PGPORT": str(self.port), "PGDATABASE": self.database, "PGUSER": self.user}
        if self.password:
            env["PGPASSWORD"] = self.password.get_secret_value()
        if self.sslmode:
            env["PGSSLMODE"] = self.sslmode
        return env


KINDS: dict[str, type[_Fields]] = {
    "kafka": KafkaConnection,
    "kinesis": KinesisConnection,
    "s3": S3Connection,
    "postgres": PostgresConnection,
}


def secret_fields(kind: str) -> list[str]:
    model = KINDS[kind]
    return [name for name, f in model.model_fields.items() if "SecretStr" in repr(f.annotation)]


def parse_fields(kind: str, fields: dict[str, Any]) -> _Fields:
    if kind not in KINDS:
        msg = f"connection kind {kind!r} is not known: use one of {', '.join(KINDS)}"
        raise ConfigurationError(msg)
    try:
        return KINDS[kind].model_validate(fields)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or kind}: {e['msg']}" for e in exc.errors())
        msg = f"{kind} connection fields are not valid: {problems}"
        raise ConfigurationError(msg) from None


class ConnectionInfo(BaseModel):
    """A connection as people see it: secrets masked."""

    name: str
    kind: str
    description: str
    fields: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class TestResult(BaseModel):
    __test__ = False  # not a pytest class

    ok: bool
    message: str


class Connections:
    def __init__(self, store: Store, box: SecretBox | None) -> None:
        """``box`` may be None for read-only use (listing, masked views)."""
        self.store = store
        self.box = box

    def _box(self) -> SecretBox:
        if self.box is None:
            msg = "no encryption key: set STREAM_ETL_CONTROL_KEY or create a key file with `stream-etl connections new-key`"
            raise ConfigurationError(msg)
        return self.box

    def create(self, name: str, kind: str, fields: dict[str, Any], *, description: str = "") -> ConnectionInfo:
        check_name("connection", name)
        parsed = parse_fields(kind, fields)
        secrets = {k: v.get_secret_value() for k in secret_fields(kind) if (v := getattr(parsed, k)) is not None}
        plain = parsed.model_dump(exclude=set(secret_fields(kind)), exclude_none=True)
        plain[_SECRET_NAMES] = sorted(secrets)
        token = self._box().encrypt(secrets)
        with self.store.creating("connection", name) as session:
            row = Connection(name=name, kind=kind, config=plain, secrets=token, description=description)
            session.add(row)
            session.flush()
            info = self._info(row)
        log.info("connection %s (%s) created", name, kind)
        return info

    def get(self, name: str) -> ConnectionInfo:
        with self.store.session() as session:
            return self._info(self._row(session, name))

    def list_all(self) -> list[ConnectionInfo]:
        with self.store.session() as session:
            return [self._info(r) for r in session.scalars(select(Connection).order_by(Connection.name))]

    def delete(self, name: str) -> None:
        with self.store.session() as session:
            session.delete(self._row(session, name))

    def resolve(self, name: str) -> _Fields:
        """The connection with its secrets decrypted: for workers and test-connection only."""
        with self.store.session() as session:
            row = self._row(session, name)
            kind, config, token = row.kind, dict(row.config), row.secrets
        config.pop(_SECRET_NAMES, None)
        return KINDS[kind].model_validate({**config, **self._box().decrypt(token)})

    def environment(self, names: list[str]) -> dict[str, str]:
        """The variables a job's workers get for ``names`` (one connection per kind)."""
        env: dict[str, str] = {}
        kinds: dict[str, str] = {}
        for name in names:
            resolved = self.resolve(name)
            kind = next(k for k, model in KINDS.items() if isinstance(resolved, model))
            if kind in kinds:
                msg = f"connections {kinds[kind]!r} and {name!r} are both {kind}: a job takes one connection per kind"
                raise ConfigurationError(msg)
            kinds[kind] = name
            env.update(resolved.environment())
        return env

    def test(self, name: str, *, timeout_s: float = 10.0) -> TestResult:
        """Really connect: Kafka metadata, S3 list bucket, Kinesis list streams, Postgres SELECT 1."""
        from stream_etl.control.probes import probe

        resolved = self.resolve(name)
        try:
            message = probe(resolved, timeout_s=timeout_s)
        except Exception as exc:  # any failure is the answer, reported without secrets
            return TestResult(ok=False, message=mask_text(f"{type(exc).__name__}: {exc}", self._secrets_of(resolved)))
        return TestResult(ok=True, message=message)

    @staticmethod
    def _secrets_of(resolved: _Fields) -> list[str]:
        return [v.get_secret_value() for v in resolved.__dict__.values() if isinstance(v, SecretStr)]

    @staticmethod
    def _row(session: Any, name: str) -> Connection:
        return by_name(session, Connection, name, kind="connection")

    @staticmethod
    def _info(row: Connection) -> ConnectionInfo:
        fields = dict(row.config)
        fields.update(dict.fromkeys(fields.pop(_SECRET_NAMES, []), MASK))
        return ConnectionInfo(
            name=row.name,
            kind=row.kind,
            description=row.description,
            fields=fields,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


def mask_text(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    return re.sub(r"(password|secret)=[^,\s]+", rf"\1={MASK}", text, flags=re.IGNORECASE)
