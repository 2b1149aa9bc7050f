"""`stream-etl bookmarks show|rewind|reset`: the positions a job's Delta table stores
(:mod:`stream_etl.control.bookmarks`). Offsets are next offsets (the first record read again).
Exit codes: 0 done, 1 a failure (a worker committed meanwhile, storage unreachable), 2 bad usage."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

bookmarks_app = typer.Typer(
    help="The source positions (bookmarks) stored in a Delta table's commit log: show, rewind, reset.",
    no_args_is_help=True,
)

Uri = Annotated[str, typer.Argument(help="The job's table: s3://bucket/path or a local path.")]
AppId = Annotated[str, typer.Option("--app-id", help="The job's app id (default of a job: its name).")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]
LIVE_NOTE = (
    "Stop the job first: a running worker notices the move at its next commit (it re-reads the "
    "positions and re-seeks), and a worker committing at the same moment makes this command fail."
)


@bookmarks_app.command("show")
def show(
    uri: Uri,
    app_id: Annotated[str | None, typer.Option("--app-id", help="Only this job's positions.")] = None,
    history_limit: Annotated[int, typer.Option(min=1, help="Commits of the log to search.")] = 10_000,
    as_json: AsJson = False,
) -> None:
    """Every partition's stored position (last offset written, next offset), the commit that
    stored it, and the lag to the topic's end when Kafka answers."""
    from rich.table import Table

    from stream_etl.control.bookmarks import show as run

    rows = _run(lambda settings: run(uri, settings, app_id=app_id, history_limit=history_limit))
    if as_json:
        _out().print_json(json.dumps(rows))
        return
    view = Table("app id", "partition", "next offset", "end", "lag", "stored by", "version", "at")
    for r in rows:
        next_offset = "start (reset)" if r["next_offset"] is None else str(r["next_offset"])
        cells = [r["end_offset"], r["lag"], r["stored_by"], r["version"], (r["committed_at"] or "")[:19]]
        view.add_row(r["app_id"], r["partition"], next_offset, *("" if c is None else str(c) for c in cells))
    _out().print(view)


@bookmarks_app.command("rewind", help=f"Move a job's positions. {LIVE_NOTE}")
def rewind(
    uri: Uri,
    app_id: AppId,
    to_offset: Annotated[
        list[str] | None,
        typer.Option("--to-offset", help="TOPIC:PARTITION=OFFSET, the next offset to read. Repeatable."),
    ] = None,
    to_timestamp: Annotated[
        str | None, typer.Option(help="ISO 8601 time with zone: read again from each partition's first record then.")
    ] = None,
    by: Annotated[int | None, typer.Option(min=1, help="Read again the last N records of each partition.")] = None,
    as_json: AsJson = False,
) -> None:
    from datetime import datetime

    from stream_etl.control.bookmarks import rewind as run
    from stream_etl.errors import ConfigurationError

    def act(settings: Any) -> Any:
        offsets = None
        if to_offset:
            offsets = {}
            for item in to_offset:
                where, _, offset = item.partition("=")
                if not offset.isdigit():
                    msg = f"--to-offset takes TOPIC:PARTITION=OFFSET, e.g. orders:0=500; got {item!r}"
                    raise ConfigurationError(msg)
                offsets[where] = int(offset)
        try:
            when = datetime.fromisoformat(to_timestamp) if to_timestamp else None
        except ValueError as exc:
            msg = f"--to-timestamp takes an ISO 8601 time such as 2026-11-21T12:00:00Z; got {to_timestamp!r}"
            raise ConfigurationError(msg) from exc
        return run(uri, settings, app_id, to_offsets=offsets, to_timestamp=when, by=by)

    _moved(_run(act), as_json)


@bookmarks_app.command(
    "reset", help=f"Forget a job's positions: it starts them per its source's start_from. {LIVE_NOTE}"
)
def reset(
    uri: Uri,
    app_id: AppId,
    partition: Annotated[
        list[str] | None, typer.Option("--partition", help="TOPIC:PARTITION to forget (default: all). Repeatable.")
    ] = None,
    as_json: AsJson = False,
) -> None:
    from stream_etl.control.bookmarks import reset as run

    _moved(_run(lambda settings: run(uri, settings, app_id, partitions=partition or [])), as_json)


def _out() -> Any:
    from stream_etl.cli import out

    return out


def _run(action: Any) -> Any:
    from stream_etl.cli import load_settings
    from stream_etl.control.cli import _errors

    with _errors():
        return action(load_settings())


def _moved(moved: Any, as_json: bool) -> None:
    if as_json:
        _out().print_json(json.dumps(moved.as_dict()))
        return
    for key, (before, after) in moved.changes.items():
        text = "start (reset)" if after is None else str(after)
        _out().print(f"{key}: next offset {before if before is not None else '-'} -> {text}", highlight=False)
    _out().print(f"stored in table version {moved.version}", highlight=False)
