"""`stream-etl table compact|vacuum|checkpoint`: table maintenance by hand, and what the worker
supervisor runs for a job of kind ``compact``, ``vacuum`` or ``checkpoint``
(:mod:`connectors.delta.maintenance`). Exit codes: 0 done (or skipped), 1 a failure
(conflicts exhausted, storage unreachable), 2 bad arguments.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from connectors.delta.maintenance import MaintenanceResult

Uri = Annotated[str, typer.Argument(help="Table location: s3://bucket/path or a local path.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]


def register(table_app: typer.Typer) -> None:
    table_app.command("compact")(compact)
    table_app.command("vacuum")(vacuum)
    table_app.command("checkpoint")(checkpoint)


def compact(
    uri: Uri,
    target_size: Annotated[
        int | None, typer.Option(min=1, help="Bytes per output file [default: the table's, else 100 MiB].")
    ] = None,
    z_order: Annotated[
        str, typer.Option(help="Comma-separated columns to Z-order by (empty: plain bin-packing).")
    ] = "",
    min_files: Annotated[int, typer.Option(min=1, help="Skip unless this many files are below the target size.")] = 2,
    attempts: Annotated[int, typer.Option(min=1, help="Tries when a concurrent commit wins a conflict.")] = 3,
    as_json: AsJson = False,
) -> None:
    """Compact small files (delta-rs optimize; Z-order with --z-order). Safe beside live writers:
    their commits rebase over the compaction, which changes no data and no stored position."""
    from connectors.delta.maintenance import compact as run

    _report(
        lambda settings: run(
            uri,
            settings,
            target_size=target_size,
            z_order=[c.strip() for c in z_order.split(",") if c.strip()],
            min_files=min_files,
            attempts=attempts,
        ),
        as_json,
    )


def vacuum(
    uri: Uri,
    retention_hours: Annotated[
        int | None, typer.Option(min=0, help="Keep removed files younger than this [default: the table's, 168].")
    ] = None,
    enforce_retention: Annotated[
        bool,
        typer.Option(
            help="Refuse a retention below the table's. Without it, readers of older versions lose their files."
        ),
    ] = True,
    dry_run: Annotated[bool, typer.Option(help="List the files that would go; delete nothing.")] = False,
    full: Annotated[
        bool, typer.Option(help="Also delete files the log never referenced (may hit a writer's in-flight files).")
    ] = False,
    as_json: AsJson = False,
) -> None:
    """Delete files the current version no longer references, older than the retention."""
    from connectors.delta.maintenance import vacuum as run

    _report(
        lambda settings: run(
            uri,
            settings,
            retention_hours=retention_hours,
            enforce_retention=enforce_retention,
            dry_run=dry_run,
            full=full,
        ),
        as_json,
    )


def checkpoint(
    uri: Uri,
    cleanup_logs: Annotated[
        bool, typer.Option(help="Delete log files older than the table's delta.logRetentionDuration (30 days).")
    ] = True,
    as_json: AsJson = False,
) -> None:
    """Write a checkpoint of the current version and clean up expired log files."""
    from connectors.delta.maintenance import checkpoint as run

    _report(lambda settings: run(uri, settings, cleanup_logs=cleanup_logs), as_json)


def _report(action: Any, as_json: bool) -> None:
    from stream_etl.cli import _errors, err, load_settings, out

    with _errors():
        result: MaintenanceResult = action(load_settings())
    if as_json:
        out.print_json(json.dumps(result.as_dict()))
        return
    if result.skipped:
        err.print(f"{result.kind} of {result.table_uri} skipped: {result.skipped}")
        return
    sizes = ""
    if result.bytes_removed is not None:
        sizes = f" ({result.bytes_removed:,} bytes -> {result.bytes_added:,} bytes)"
    what = "log files" if result.kind == "checkpoint" else "files"
    verb = "would remove" if result.dry_run else "removed"
    out.print(
        f"{result.kind} {result.table_uri}: version {result.version_before} -> {result.version_after}; "
        f"{what} {verb} {result.files_removed}, added {result.files_added}{sizes}; "
        f"active files {result.files_before} -> {result.files_after}",
        highlight=False,
        soft_wrap=True,
    )
