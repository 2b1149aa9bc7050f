"""What a crawler reads (targets) and what it finds there (tables with schemas and partitions).

A target is one Kafka topic, Kinesis stream, S3 or local prefix, or Postgres table pattern,
with an optional connection. :func:`crawl` reads it and returns :class:`Found` tables: it
never writes the catalog (:mod:`stream_etl.control.crawl_changes` does, by policy).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from stream_etl.control.classifiers import CustomClassifier
from stream_etl.settings import Settings

TargetKind = Literal["kafka", "kinesis", "s3", "path", "postgres"]

#: The connection kind each target kind takes.
CONNECTION_KINDS: dict[str, str] = {
    "kafka": "kafka",
    "kinesis": "kinesis",
    "s3": "s3",
    "path": "s3",
    "postgres": "postgres",
}


class Target(BaseModel):
    """``path`` is the topic, the stream, the prefix (``s3://bucket/prefix`` or a directory) or
    the Postgres table (``schema.table``; ``%`` matches any characters, as in ``public.%``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: TargetKind
    path: str
    connection: str | None = None
    #: Glob patterns of keys to skip under a prefix (``**/_tmp/**``, ``*.crc``).
    exclusions: list[str] = Field(default_factory=list)
    #: Kind-specific options: ``schema_registry_url`` (Kafka/Kinesis Avro), ``sample_from``
    #: (Kafka: ``end``, the default, or ``beginning``).
    options: dict[str, str] = Field(default_factory=dict)

    def describe(self) -> str:
        return f"{self.kind}:{self.path}"


@dataclass(frozen=True, slots=True)
class FoundPartition:
    values: tuple[str, ...]
    location: str


@dataclass(frozen=True, slots=True)
class Found:
    """A table as a crawl sees it: ``schema`` holds the data columns then the partition keys."""

    name: str
    location: str
    format: str
    classification: str
    schema: pa.Schema
    certainty: float = 1.0
    partition_keys: tuple[str, ...] = ()
    partitions: tuple[FoundPartition, ...] = ()
    parameters: dict[str, Any] = field(default_factory=dict)
    #: Whether the crawl read this table's data (False: only new folders were listed and read).
    complete: bool = True


@dataclass(frozen=True, slots=True)
class CrawlContext:
    settings: Settings
    sample_size: int
    custom: Sequence[CustomClassifier] = ()
    #: A resolved connection (decrypted fields) for the target, if it names one.
    connection: Any = None
    #: Partition locations registered by earlier runs (recrawl policy "new folders only").
    known_folders: frozenset[str] | None = None
    #: Locations of the tables the crawler registered before: a prefix is not grouped into one
    #: table above them, so a table stays where it is when its sibling folders go away.
    known_tables: frozenset[str] = frozenset()
    timeout_s: float = 10.0
    #: Where Confluent-framed Avro records' schemas come from when the target names no
    #: ``schema_registry_url``: the control plane's own schema registry.
    resolver: Any = None


@dataclass(slots=True)
class Crawled:
    tables: list[Found] = field(default_factory=list)
    #: Locations read whose format no classifier recognised (Glue's UNKNOWN).
    unclassified: list[str] = field(default_factory=list)
    #: How many records or files were read.
    sampled: int = 0
    #: Locations of tables this target would hold: the crawler's tables matching it and not
    #: found are gone (the delete behavior applies to them).
    scope: re.Pattern[str] | None = None

    def covers(self, location: str) -> bool:
        return self.scope is not None and self.scope.fullmatch(location) is not None


def crawl(target: Target, context: CrawlContext) -> Crawled:
    if target.kind == "kafka":
        from stream_etl.control.crawl_streams import crawl_kafka

        return crawl_kafka(target, context)
    if target.kind == "kinesis":
        from stream_etl.control.crawl_streams import crawl_kinesis

        return crawl_kinesis(target, context)
    if target.kind == "postgres":
        from stream_etl.control.crawl_postgres import crawl_postgres

        return crawl_postgres(target, context)
    from stream_etl.control.crawl_files import crawl_files

    return crawl_files(target, context)


_INVALID = re.compile(r"[^A-Za-z0-9_.\-]+")


def table_name(text: str) -> str:
    """A catalog table name from a topic, stream, folder or table name."""
    return _INVALID.sub("_", text).strip("_.-")[:200] or "table"


def settings_for(base: Mapping[str, str], connection_env: Mapping[str, str]) -> Settings:
    """The engine's settings from ``base`` (the environment) with a connection's variables over it."""
    return Settings.from_environment({**base, **connection_env})
