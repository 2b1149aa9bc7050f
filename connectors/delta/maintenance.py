"""Table maintenance on delta-rs: compaction, vacuum, checkpoints and log clean-up.

Each runs beside live writers without breaking their exactly-once commits:

- **compact** (``optimize``, optionally Z-order) commits ``remove``/``add`` actions with
  ``dataChange=false`` and no ``txn`` action. A sink commit based on a snapshot older than
  the compaction still lands: delta-rs's conflict checker rebases a blind append over it
  and only refuses one when the winning commit holds a ``txn`` of the same app id. The
  other way round, appends landing during a compaction do not fail it. delta-rs does *not*
  refuse two compactions removing the same files (both land: the rows would be there
  twice), so a compaction first claims the table (:func:`_claim`); a second one meanwhile
  raises :class:`~stream_etl.errors.CommitContention`. A compaction commit that still fails
  is retried on a fresh snapshot, ``attempts`` times.
- **vacuum** deletes files no longer referenced by the current version once they are older
  than the retention. The default (lite) mode only deletes files the log recorded as
  removed, so a writer's data files that are written but not yet committed are never
  touched; ``full=True`` also deletes unreferenced files, which with a short retention can
  delete an in-flight writer's files. Readers still reading an older version lose its files
  when the retention is shorter than their reads: keep the default (the table's
  ``delta.deletedFileRetentionDuration``, 7 days) unless no reader can be that old.
- **checkpoint** writes a Parquet checkpoint of the current version (readers and writers
  load the log from it) and deletes commit files older than the table's
  ``delta.logRetentionDuration`` (30 days) that precede a checkpoint. ``txn`` actions
  survive in the checkpoint; commit metadata (``stream_etl.cursors`` of a Kinesis shard that
  has not been written since) does not: see docs/CONTROL_PLANE.md.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs

from connectors.delta.bookmarks import store_txns
from connectors.delta.config import storage_options
from stream_etl.errors import CommitContention, ConfigurationError, SinkUnavailable, StreamEtlError
from stream_etl.settings import Settings
from stream_etl.storage import filesystem_for

try:
    from deltalake import DeltaTable
    from deltalake.exceptions import CommitFailedError, DeltaError, TableNotFoundError
except ImportError as exc:  # pragma: no cover - depends on the install
    msg = "table maintenance needs deltalake: pip install 'stream-etl[delta]'"
    raise ImportError(msg) from exc

log = logging.getLogger(__name__)

Kind = Literal["compact", "vacuum", "checkpoint"]
KINDS: tuple[Kind, ...] = ("compact", "vacuum", "checkpoint")

#: The txn app id of compaction claims (:func:`_claim`); its version is the claim's expiry (ms).
COMPACTION_APP_ID = "stream-etl-compaction"

#: How long a compaction's claim lasts at most (a crashed compaction blocks the next for that long).
CLAIM_MS = 3_600_000

#: delta-rs's target file size when neither the caller nor the table sets one (100 MiB).
DEFAULT_TARGET_SIZE = 104_857_600


@dataclass(frozen=True, slots=True)
class MaintenanceResult:
    """What one maintenance operation did to a table."""

    kind: Kind
    table_uri: str
    version_before: int
    version_after: int
    files_before: int
    files_after: int
    files_removed: int = 0
    files_added: int = 0
    bytes_removed: int | None = None
    bytes_added: int | None = None
    dry_run: bool = False
    skipped: str | None = None
    attempts: int = 1
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def open_table(uri: str, settings: Settings, options: Mapping[str, str] | None = None) -> DeltaTable:
    """The table at ``uri`` reached with the settings' S3 options (explicit ``options`` over them)."""
    try:
        return DeltaTable(uri, storage_options=storage_options(uri, settings, options) or None)
    except TableNotFoundError as exc:
        msg = f"no Delta table at {uri}; check the URI (and STREAM_ETL_S3_* settings for s3://)"
        raise ConfigurationError(msg) from exc
    except (OSError, DeltaError) as exc:
        msg = f"reading {uri} failed: {exc}"
        raise SinkUnavailable(msg, table_uri=uri) from exc


def _files(table: DeltaTable) -> pa.Table:
    return pa.table(table.get_add_actions(flatten=True))


def compact(
    uri: str,
    settings: Settings,
    *,
    options: Mapping[str, str] | None = None,
    target_size: int | None = None,
    z_order: Sequence[str] = (),
    min_files: int = 2,
    attempts: int = 3,
) -> MaintenanceResult:
    """Rewrite small files into files of about ``target_size`` bytes (Z-ordered by ``z_order``).

    Skipped when fewer than ``min_files`` files are below the target size. The table is
    claimed first (:func:`_claim`): a second compaction meanwhile raises
    :class:`CommitContention`. A compaction that loses a conflict is retried on a fresh
    snapshot; after ``attempts`` it raises :class:`CommitContention` too."""
    if attempts < 1 or min_files < 1:
        msg = f"attempts and min_files must be >= 1, got {attempts} and {min_files}"
        raise ConfigurationError(msg)
    table = open_table(uri, settings, options)
    before, files = table.version(), _files(table)
    target = target_size or int(table.metadata().configuration.get("delta.targetFileSize") or DEFAULT_TARGET_SIZE)
    small = int(pc.sum(pc.less(files["size_bytes"], target)).as_py() or 0) if files.num_rows else 0
    if small < min_files:
        reason = f"{small} file(s) below {target:,} bytes, fewer than min_files={min_files}"
        return MaintenanceResult("compact", uri, before, before, files.num_rows, files.num_rows, skipped=reason)
    _claim(table, uri, int(time.time() * 1000))
    try:
        for attempt in range(1, attempts + 1):
            table.update_incremental()
            try:
                if z_order:
                    metrics = table.optimize.z_order(list(z_order), target_size=target_size)
                else:
                    metrics = table.optimize.compact(target_size=target_size)
            except CommitFailedError as exc:
                log.warning("compaction of %s lost a conflict (attempt %d of %d): %s", uri, attempt, attempts, exc)
                if attempt < attempts:
                    continue
                msg = f"compacting {uri} conflicted with concurrent commits {attempts} times ({exc}); run it again"
                raise CommitContention(msg, table_uri=uri, table_version=before) from exc
            except (OSError, DeltaError) as exc:
                msg = f"compacting {uri} failed: {exc}"
                raise SinkUnavailable(msg, table_uri=uri, table_version=before) from exc
            removed, added = int(metrics["numFilesRemoved"]), int(metrics["numFilesAdded"])
            after, read = _optimize_commit(table) if removed else (table.version(), table.version())
            return MaintenanceResult(
                "compact",
                uri,
                before,
                after,
                files.num_rows,
                files.num_rows - removed + added,
                files_removed=removed,
                files_added=added,
                bytes_removed=int(json.loads(metrics["filesRemoved"]).get("totalSize", 0)),
                bytes_added=int(json.loads(metrics["filesAdded"]).get("totalSize", 0)),
                attempts=attempt,
                details={
                    "z_order": list(z_order),
                    "target_size": target,
                    "partitions": metrics["partitionsOptimized"],
                    "read_version": read,
                },
            )
        raise AssertionError  # pragma: no cover - the loop returns or raises
    finally:
        _release(uri, settings, options)


def _claim(table: DeltaTable, uri: str, now_ms: int) -> None:
    """Claim ``table`` for one compaction until ``now_ms`` + :data:`CLAIM_MS`: an empty commit
    whose txn action (app id :data:`COMPACTION_APP_ID`) holds the claim's expiry.

    delta-rs does not see two compactions removing the same files as a conflict: both commit and
    the data is there twice. So compactions take turns: a live claim refuses a second one, and of
    two claiming at once delta-rs refuses one (its txn app id moved since its snapshot). Writers
    with other app ids rebase over the claim. A crashed compaction's claim expires."""
    held = table.transaction_version(COMPACTION_APP_ID)
    if held is not None and held > now_ms:
        until = datetime.fromtimestamp(held / 1000, UTC).isoformat(timespec="seconds")
        msg = f"another compaction of {uri} holds it (until {until} at the latest); run this one later"
        raise CommitContention(msg, table_uri=uri, table_version=table.version())
    try:
        store_txns(table, {COMPACTION_APP_ID: now_ms + CLAIM_MS}, {"stream_etl.maintenance": "compaction claim"})
    except CommitFailedError as exc:
        msg = f"another compaction claimed {uri} at the same moment; run this one later"
        raise CommitContention(msg, table_uri=uri, table_version=table.version()) from exc


def _release(uri: str, settings: Settings, options: Mapping[str, str] | None) -> None:
    try:
        store_txns(open_table(uri, settings, options), {COMPACTION_APP_ID: 0}, {"stream_etl.maintenance": "release"})
    except (StreamEtlError, OSError, DeltaError):  # the claim expires on its own
        log.warning("could not release the compaction claim on %s; it expires by itself", uri, exc_info=True)


def _optimize_commit(table: DeltaTable) -> tuple[int, int]:
    """The version of the compaction just committed and the version it read. The table object
    may have moved past it (delta-rs reloads it after rebasing over concurrent commits)."""
    for entry in table.history(100):
        if entry["operation"] == "OPTIMIZE":
            return int(entry["version"]), int(entry.get("readVersion", entry["version"]))
    return table.version(), table.version()  # pragma: no cover - 100 commits landed meanwhile


def vacuum(
    uri: str,
    settings: Settings,
    *,
    options: Mapping[str, str] | None = None,
    retention_hours: int | None = None,
    enforce_retention: bool = True,
    dry_run: bool = False,
    full: bool = False,
) -> MaintenanceResult:
    """Delete files the current version no longer references, older than ``retention_hours``
    (default: the table's ``delta.deletedFileRetentionDuration``, 7 days). With
    ``enforce_retention`` a retention below the table's is refused; ``dry_run`` lists only.
    ``files_removed`` is what delta-rs reports: in lite mode it names again files an earlier
    vacuum already deleted while their remove actions are still in the log."""
    table = open_table(uri, settings, options)
    before, count = table.version(), _files(table).num_rows
    try:
        deleted = table.vacuum(
            retention_hours=retention_hours,
            dry_run=dry_run,
            enforce_retention_duration=enforce_retention,
            full=full,
        )
    except Exception as exc:  # delta-rs raises a plain Exception for a refused retention
        if "retention period" in str(exc).lower():
            msg = f"vacuum of {uri} refused: {exc}; pass a longer retention, or --no-enforce-retention (read the risk)"
            raise ConfigurationError(msg) from exc
        if isinstance(exc, (OSError, DeltaError)):
            msg = f"vacuum of {uri} failed: {exc}"
            raise SinkUnavailable(msg, table_uri=uri, table_version=before) from exc
        raise
    table.update_incremental()
    return MaintenanceResult(
        "vacuum",
        uri,
        before,
        table.version(),
        count,
        count,
        files_removed=len(deleted),
        dry_run=dry_run,
        details={"retention_hours": retention_hours, "full": full, "deleted": sorted(deleted)[:100]},
    )


def checkpoint(
    uri: str,
    settings: Settings,
    *,
    options: Mapping[str, str] | None = None,
    cleanup_logs: bool = True,
) -> MaintenanceResult:
    """Write a checkpoint of the current version, then (``cleanup_logs``) delete expired log files."""
    table = open_table(uri, settings, options)
    version, count = table.version(), _files(table).num_rows
    logs_before = _log_files(uri, settings)
    try:
        table.create_checkpoint()
        if cleanup_logs:
            table.cleanup_metadata()
    except (OSError, DeltaError) as exc:
        msg = f"checkpointing {uri} failed: {exc}"
        raise SinkUnavailable(msg, table_uri=uri, table_version=version) from exc
    logs_after = _log_files(uri, settings)
    return MaintenanceResult(
        "checkpoint",
        uri,
        version,
        version,
        count,
        count,
        files_removed=len(logs_before - logs_after),
        files_added=len(logs_after - logs_before),
        details={"checkpoint_version": version, "log_files": len(logs_after), "cleanup_logs": cleanup_logs},
    )


def _log_files(uri: str, settings: Settings) -> set[str]:
    """Names of the files in the table's ``_delta_log`` (to report what a clean-up deleted)."""
    fs, path = filesystem_for(uri, settings)
    selector = pafs.FileSelector(f"{path.rstrip('/')}/_delta_log", allow_not_found=True)
    try:
        return {info.base_name for info in fs.get_file_info(selector) if info.type == pafs.FileType.File}
    except OSError:
        return set()
