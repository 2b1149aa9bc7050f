"""Delta sink settings: where the table lives and how to reach it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal
from urllib.parse import urlparse

from stream_etl.settings import Settings

_S3_SCHEMES = ("s3", "s3a")


def is_s3(uri: str) -> bool:
    return urlparse(uri).scheme in _S3_SCHEMES


def storage_options(uri: str, settings: Settings, explicit: Mapping[str, str] | None) -> dict[str, str]:
    """object_store options for ``uri``: settings first, explicit options over them."""
    options = settings.s3_storage_options() if is_s3(uri) else {}
    options.update(explicit or {})
    return options


S3Problem = Literal["unreachable", "no_bucket", "other"]


def diagnose_s3(uri: str, options: Mapping[str, str]) -> tuple[S3Problem, str]:
    """Why ``uri`` cannot be read: an unreachable endpoint, a missing bucket, or else."""
    import pyarrow.fs as pafs

    bucket = urlparse(uri).netloc
    endpoint = options.get("AWS_ENDPOINT_URL") or options.get("aws_endpoint_url")
    where = endpoint or "AWS S3"
    kwargs: dict[str, object] = {
        "region": options.get("AWS_REGION", "us-east-1"),
        "connect_timeout": 3,
        "request_timeout": 3,
        "retry_strategy": pafs.AwsStandardS3RetryStrategy(max_attempts=1),
    }
    if endpoint:
        parsed = urlparse(endpoint)
        kwargs.update(endpoint_override=parsed.netloc, scheme=parsed.scheme or "https")
    if "AWS_ACCESS_KEY_ID" in options:
        kwargs.update(access_key=options["AWS_ACCESS_KEY_ID"], secret_key=options.get("AWS_SECRET_ACCESS_KEY", ""))
    try:
        info = pafs.S3FileSystem(**kwargs).get_file_info(bucket)
    except OSError as exc:
        return "unreachable", (
            f"cannot reach S3 at {where} ({exc}); check STREAM_ETL_S3_ENDPOINT_URL or run `stream-etl dev up`"
        )
    if info.type == pafs.FileType.NotFound:
        return "no_bucket", (
            f"bucket {bucket!r} does not exist at {where}; create it first (`stream-etl dev up` creates 'lake')"
        )
    return "other", f"S3 at {where} answered, but reading {uri} failed"
