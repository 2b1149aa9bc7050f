"""Files on local disk or S3, reached with the job's settings (pyarrow.fs)."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlparse

from stream_etl.settings import Settings

if TYPE_CHECKING:
    import pyarrow.fs as pafs


def filesystem_for(uri: str, settings: Settings) -> tuple[pafs.FileSystem, str]:
    """A pyarrow filesystem and the path in it for ``uri`` (a local path, ``s3://`` or any
    URI pyarrow knows), with S3 reached as the settings say."""
    import pyarrow.fs as pafs  # ~10 ms (it loads OpenSSL): only where a file system is used

    parsed = urlparse(uri)
    if parsed.scheme in ("s3", "s3a"):
        options = settings.s3_storage_options()
        kwargs: dict[str, object] = {"region": options.get("AWS_REGION", "us-east-1")}
        endpoint = options.get("AWS_ENDPOINT_URL")
        if endpoint:
            target = urlparse(endpoint)
            kwargs.update(endpoint_override=target.netloc, scheme=target.scheme or "https")
        if "AWS_ACCESS_KEY_ID" in options:
            kwargs.update(access_key=options["AWS_ACCESS_KEY_ID"], secret_key=options.get("AWS_SECRET_ACCESS_KEY", ""))
        return pafs.S3FileSystem(**kwargs), f"{parsed.netloc}{parsed.path}"
    if parsed.scheme in ("", "file"):
        return pafs.LocalFileSystem(), parsed.path if parsed.scheme else uri
    fs, path = pafs.FileSystem.from_uri(uri)
    return fs, path
