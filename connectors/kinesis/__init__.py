"""Kinesis connector (boto3): a source whose shards are shared through leases and whose
sequence numbers resume from cursors kept in the sink."""

from connectors.kinesis.config import KinesisSourceConfig
from connectors.kinesis.source import KinesisSource

__all__ = ["KinesisSource", "KinesisSourceConfig"]
