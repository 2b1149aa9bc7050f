"""Kinesis source settings."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

MetadataField = Literal["stream", "shard", "sequence_number", "partition_key", "arrival_time"]

StartFrom = Literal["trim_horizon", "earliest", "latest"]

_STREAM = re.compile(r"^[a-zA-Z0-9_.\-]{1,128}$")


class KinesisSourceConfig(BaseModel):
    """What a :class:`~connectors.kinesis.KinesisSource` reads and how.

    ``start_from`` only applies to shards without a stored position whose parents are
    not in the stream (shards born from a resharding always start at their first record):
    ``"trim_horizon"`` (alias ``"earliest"``), ``"latest"``, a ``datetime``
    (AT_TIMESTAMP), or a mapping shard id -> sequence number (AT_SEQUENCE_NUMBER for
    those shards, TRIM_HORIZON for the others).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    stream: str
    endpoint_url: str | None = None
    region: str | None = None
    start_from: StartFrom | datetime | dict[str, str] = "trim_horizon"
    metadata: tuple[MetadataField, ...] = ()
    lease_uri: str | None = None
    lease_duration: timedelta = timedelta(seconds=10)
    worker_id: str | None = None
    max_records_per_call: int = Field(default=10_000, ge=1, le=10_000)
    idle_poll: timedelta = timedelta(milliseconds=250)
    list_shards_interval: timedelta = timedelta(seconds=10)
    connect_timeout_s: float = Field(default=15.0, gt=0)

    @field_validator("stream")
    @classmethod
    def _name(cls, stream: str) -> str:
        if not _STREAM.match(stream):
            msg = f"{stream!r} is not a valid Kinesis stream name (1-128 of letters, digits, '_', '.', '-')"
            raise ValueError(msg)
        return stream

    @field_validator("lease_duration")
    @classmethod
    def _lease(cls, value: timedelta) -> timedelta:
        if value < timedelta(seconds=1):
            msg = f"lease_duration must be at least 1 s, got {value}"
            raise ValueError(msg)
        return value
