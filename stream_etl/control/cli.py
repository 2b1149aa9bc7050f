"""CLI commands of the control plane: `stream-etl catalog|connections|jobs|runs|tokens|api|worker`.

Registered on the main app by :func:`register`. This module imports only Typer and
Rich at load time; SQLAlchemy, FastAPI and the rest load inside the commands, so
`stream-etl run` never pays for them. Environment variables are read here
(through Typer's ``envvar``): ``STREAM_ETL_CONTROL_DB`` (store URL),
``STREAM_ETL_CONTROL_KEY`` / ``STREAM_ETL_CONTROL_KEY_FILE`` (secrets key).
Exit codes: 0 success, 1 a failure (not found, conflict, a run that did not
succeed), 2 bad usage or configuration.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from stream_etl.console import LazyConsole, new_table

if TYPE_CHECKING:
    from stream_etl.control.connections import Connections
    from stream_etl.control.store import Store

out = LazyConsole()
_T = TypeVar("_T")
err = LazyConsole(stderr=True)

Db = Annotated[
    str | None,
    typer.Option(
        "--db", envvar="STREAM_ETL_CONTROL_DB", help="Metadata store URL [default: sqlite:///~/.stream-etl/control.db]."
    ),
]
Key = Annotated[
    str | None,
    typer.Option("--key", envvar="STREAM_ETL_CONTROL_KEY", help="Secrets key (Fernet).", show_default=False),
]
KeyFile = Annotated[
    Path | None,
    typer.Option(
        "--key-file",
        envvar="STREAM_ETL_CONTROL_KEY_FILE",
        help="Secrets key file [default: ~/.stream-etl/control.key].",
    ),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]

catalog_app = typer.Typer(
    help="The data catalog: databases, tables, partitions, schema versions.", no_args_is_help=True
)
connections_app = typer.Typer(
    help="Connections to Kafka, Kinesis/AWS, S3 and Postgres (secrets encrypted).", no_args_is_help=True
)
jobs_app = typer.Typer(
    help="Jobs: a topology with its arguments, workers, mode, retries, timeout and connections.", no_args_is_help=True
)
runs_app = typer.Typer(help="Job runs: list, show, stop, wait.", no_args_is_help=True)
tokens_app = typer.Typer(help="API bearer tokens with roles viewer, operator, admin.", no_args_is_help=True)
api_app = typer.Typer(help="The REST API (FastAPI; OpenAPI at /openapi.json).", no_args_is_help=True)


# Command groups in modules beside this one: (module path, attribute of its typer.Typer, name).
# Each module keeps its heavy imports inside its commands, as this one does.
COMMAND_MODULES: tuple[tuple[str, str, str], ...] = (
    ("stream_etl.control.cli_registry", "registry_app", "registry"),
    ("stream_etl.control.cli_crawlers", "crawlers_app", "crawlers"),
    ("stream_etl.control.cli_triggers", "triggers_app", "triggers"),
    ("stream_etl.control.cli_triggers", "workflows_app", "workflows"),
    ("stream_etl.control.cli_triggers", "scheduler_app", "scheduler"),
    ("stream_etl.control.cli_bookmarks", "bookmarks_app", "bookmarks"),
)


def register(app: typer.Typer) -> None:
    import importlib

    for module, attribute, group in COMMAND_MODULES:
        app.add_typer(getattr(importlib.import_module(module), attribute), name=group)
    for sub, name in (
        (catalog_app, "catalog"),
        (connections_app, "connections"),
        (jobs_app, "jobs"),
        (runs_app, "runs"),
        (tokens_app, "tokens"),
        (api_app, "api"),
    ):
        app.add_typer(sub, name=name)
    app.command("worker")(worker)


@contextmanager
def _errors() -> Iterator[None]:
    from stream_etl.errors import ConfigurationError, StreamEtlError

    try:
        yield
    except ConfigurationError as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    except StreamEtlError as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None


def _store(db: str | None) -> Store:
    from stream_etl.control.store import Store

    return Store.open(db)


def _connections(store: Store, key: str | None, key_file: Path | None, *, need_key: bool) -> Connections:
    from stream_etl.control.connections import Connections
    from stream_etl.control.secrets import SecretBox
    from stream_etl.errors import ConfigurationError

    try:
        box = SecretBox.from_settings(key=key, key_file=key_file)
    except ConfigurationError:
        if need_key:
            raise
        box = None
    return Connections(store, box)


def _pairs(items: list[str] | None, what: str) -> dict[str, str]:
    from stream_etl.errors import ConfigurationError

    found: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            msg = f"{what} {item!r} is not key=value"
            raise ConfigurationError(msg)
        found[key.strip()] = value
    return found


def _read_secret(name: str) -> str:
    """A hidden prompt on a terminal; otherwise the next line of stdin (pipes, scripts)."""
    import sys

    if sys.stdin.isatty():
        return str(typer.prompt(name, hide_input=True))
    return sys.stdin.readline().rstrip("\r\n")


def _print_json(value: Any) -> None:
    out.print_json(json.dumps(value, default=str))


def _dump(model: Any) -> Any:
    return model.model_dump(mode="json", by_alias=True)


def _print_list(found: Sequence[_T], as_json: bool, columns: Sequence[str], row: Callable[[_T], list[str]]) -> None:
    """``found`` as a JSON list (``--json``) or as a table of ``columns``, a ``row(item)`` each."""
    if as_json:
        _print_json([_dump(item) for item in found])
        return
    table = new_table(*columns)
    for item in found:
        table.add_row(*row(item))
    out.print(table)


# catalog ------------------------------------------------------------------------------


@catalog_app.command("databases")
def catalog_databases(db: Db = None, as_json: AsJson = False) -> None:
    """List the catalog's databases."""
    from stream_etl.control.catalog import Catalog

    with _errors(), _store(db) as store:
        found = Catalog(store).list_databases()
    _print_list(found, as_json, ("database", "tables", "description"), lambda d: [d.name, str(d.tables), d.description])


@catalog_app.command("create-database")
def catalog_create_database(
    name: Annotated[str, typer.Argument(help="Database name.")],
    description: Annotated[str, typer.Option(help="What it holds.")] = "",
    db: Db = None,
) -> None:
    """Create a catalog database."""
    from stream_etl.control.catalog import Catalog

    with _errors(), _store(db) as store:
        Catalog(store).create_database(name, description=description)
    err.print(f"database {name} created")


@catalog_app.command("delete-database")
def catalog_delete_database(name: Annotated[str, typer.Argument(help="Database name.")], db: Db = None) -> None:
    """Delete a catalog database and every table in it (the data is not touched)."""
    from stream_etl.control.catalog import Catalog

    with _errors(), _store(db) as store:
        Catalog(store).delete_database(name)
    err.print(f"database {name} deleted")


@catalog_app.command("tables")
def catalog_tables(
    database: Annotated[str, typer.Argument(help="Database name.")], db: Db = None, as_json: AsJson = False
) -> None:
    """List the tables of a database."""
    from stream_etl.control.catalog import Catalog

    with _errors(), _store(db) as store:
        found = Catalog(store).list_tables(database)
    _print_list(
        found,
        as_json,
        ("table", "format", "location", "partition keys", "schema version"),
        lambda t: [t.name, t.format, t.location, ", ".join(t.partition_keys), str(t.schema_version)],
    )


@catalog_app.command("table")
def catalog_table(
    database: Annotated[str, typer.Argument(help="Database name.")],
    name: Annotated[str, typer.Argument(help="Table name.")],
    db: Db = None,
) -> None:
    """Show a table: location, format, schema (Arrow schema JSON), partition keys, parameters."""
    from stream_etl.control.catalog import Catalog

    with _errors(), _store(db) as store:
        found = Catalog(store).get_table(database, name)
    _print_json(_dump(found))


@catalog_app.command("create-table")
def catalog_create_table(
    database: Annotated[str, typer.Argument(help="Database name.")],
    name: Annotated[str, typer.Argument(help="Table name.")],
    location: Annotated[str, typer.Option(help="Where the data is: s3://bucket/path or a path.")],
    schema_file: Annotated[
        Path, typer.Option(exists=True, dir_okay=False, help="Arrow schema JSON (a list of fields).")
    ],
    format: Annotated[str, typer.Option(help="delta, parquet, json, csv...")] = "delta",  # noqa: A002
    partition_key: Annotated[list[str] | None, typer.Option(help="Partition column. Repeatable.")] = None,
    parameter: Annotated[list[str] | None, typer.Option(help="key=value. Repeatable.")] = None,
    classification: Annotated[str, typer.Option(help="Default: the format.")] = "",
    db: Db = None,
) -> None:
    """Register a table by hand (Delta sinks of jobs with a catalog database register theirs)."""
    from stream_etl.control import schemas
    from stream_etl.control.catalog import Catalog

    with _errors(), _store(db) as store:
        schema = schemas.schema_from_json(json.loads(schema_file.read_text()))
        Catalog(store).create_table(
            database,
            name,
            location=location,
            format=format,
            schema=schema,
            partition_keys=partition_key or [],
            parameters=_pairs(parameter, "parameter"),
            classification=classification,
            source="cli",
        )
    err.print(f"table {database}.{name} created")


@catalog_app.command("versions")
def catalog_versions(
    database: Annotated[str, typer.Argument(help="Database name.")],
    name: Annotated[str, typer.Argument(help="Table name.")],
    db: Db = None,
    as_json: AsJson = False,
) -> None:
    """A table's schema history."""
    from stream_etl.control.catalog import Catalog

    with _errors(), _store(db) as store:
        found = Catalog(store).versions(database, name)
    _print_list(
        found,
        as_json,
        ("version", "columns", "recorded", "source"),
        lambda v: [str(v.version), ", ".join(f["name"] for f in v.schema_), str(v.created_at)[:19], v.source],
    )


@catalog_app.command("diff")
def catalog_diff(
    database: Annotated[str, typer.Argument(help="Database name.")],
    name: Annotated[str, typer.Argument(help="Table name.")],
    old: Annotated[int, typer.Option("--from", help="Older schema version.")] = 1,
    new: Annotated[int | None, typer.Option("--to", help="Newer schema version [default: current].")] = None,
    db: Db = None,
) -> None:
    """What changed between two schema versions: added, removed and changed columns."""
    from stream_etl.control.catalog import Catalog

    with _errors(), _store(db) as store:
        found = Catalog(store).diff(database, name, old, new)
    _print_json(_dump(found))


@catalog_app.command("partitions")
def catalog_partitions(
    database: Annotated[str, typer.Argument(help="Database name.")],
    name: Annotated[str, typer.Argument(help="Table name.")],
    db: Db = None,
) -> None:
    """A table's registered partitions."""
    from stream_etl.control.catalog import Catalog

    with _errors(), _store(db) as store:
        found = Catalog(store).list_partitions(database, name)
    _print_json([_dump(p) for p in found])


# connections ----------------------------------------------------------------------------


@connections_app.command("new-key")
def connections_new_key(
    key_file: KeyFile = None,
) -> None:
    """Create the secrets key file (mode 0600). Keep it: it decrypts the stored secrets."""
    from stream_etl.control.secrets import DEFAULT_KEY_FILE, new_key_file

    with _errors():
        path = new_key_file(key_file or DEFAULT_KEY_FILE)
    err.print(f"key written to {path} (mode 600)")


@connections_app.command("add")
def connections_add(
    name: Annotated[str, typer.Argument(help="Connection name.")],
    kind: Annotated[str, typer.Option(help="kafka, kinesis, s3 or postgres.")],
    field: Annotated[
        list[str] | None, typer.Option(help="field=value (e.g. bootstrap_servers=host:9092). Repeatable.")
    ] = None,
    secret: Annotated[
        list[str] | None,
        typer.Option(
            help="A secret field (e.g. sasl_password) to read from the terminal, or from stdin, hidden. Repeatable."
        ),
    ] = None,
    description: Annotated[str, typer.Option(help="What it is for.")] = "",
    db: Db = None,
    key: Key = None,
    key_file: KeyFile = None,
) -> None:
    """Add a connection. Give secrets with --secret NAME (prompted, never echoed) rather than --field."""
    with _errors(), _store(db) as store:
        fields: dict[str, Any] = dict(_pairs(field, "field"))
        for name_ in secret or []:
            fields[name_] = _read_secret(name_)
        if "options" in fields:
            fields["options"] = _pairs(str(fields["options"]).split(","), "option")
        info = _connections(store, key, key_file, need_key=True).create(name, kind, fields, description=description)
    _print_json(_dump(info))


@connections_app.command("list")
def connections_list(db: Db = None, as_json: AsJson = False) -> None:
    """List connections (secrets masked)."""
    with _errors(), _store(db) as store:
        found = _connections(store, None, None, need_key=False).list_all()
    _print_list(
        found,
        as_json,
        ("connection", "kind", "fields"),
        lambda c: [c.name, c.kind, ", ".join(f"{k}={v}" for k, v in c.fields.items())],
    )


@connections_app.command("show")
def connections_show(name: Annotated[str, typer.Argument(help="Connection name.")], db: Db = None) -> None:
    """Show a connection (secrets masked)."""
    with _errors(), _store(db) as store:
        info = _connections(store, None, None, need_key=False).get(name)
    _print_json(_dump(info))


@connections_app.command("delete")
def connections_delete(name: Annotated[str, typer.Argument(help="Connection name.")], db: Db = None) -> None:
    """Delete a connection."""
    with _errors(), _store(db) as store:
        _connections(store, None, None, need_key=False).delete(name)
    err.print(f"connection {name} deleted")


@connections_app.command("test")
def connections_test(
    name: Annotated[str, typer.Argument(help="Connection name.")],
    timeout: Annotated[float, typer.Option(help="Seconds to wait.")] = 10.0,
    db: Db = None,
    key: Key = None,
    key_file: KeyFile = None,
) -> None:
    """Really connect (Kafka metadata, S3 list bucket, Postgres SELECT 1). Exit code 1 when it fails."""
    with _errors(), _store(db) as store:
        result = _connections(store, key, key_file, need_key=True).test(name, timeout_s=timeout)
    (out if result.ok else err).print(("ok: " if result.ok else "failed: ") + result.message, highlight=False)
    if not result.ok:
        raise typer.Exit(1)


# jobs -------------------------------------------------------------------------------------


@jobs_app.command("create")
def jobs_create(
    name: Annotated[str, typer.Argument(help="Job name.")],
    topology: Annotated[
        str, typer.Option(help="path/to/module.py[:attribute] (relative to the supervisor's directory).")
    ] = "",
    kind: Annotated[
        str,
        typer.Option(
            help="topology, or table maintenance: compact, vacuum, checkpoint "
            "(--arg table=URI plus `stream-etl table KIND` options as --arg, e.g. --arg z_order=country)."
        ),
    ] = "topology",
    arg: Annotated[list[str] | None, typer.Option("--arg", help="Job argument key=value. Repeatable.")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes (one consumer group).")] = 1,
    mode: Annotated[str, typer.Option(help="continuous or until_caught_up.")] = "continuous",
    max_retries: Annotated[int, typer.Option(min=0, help="Worker restarts allowed per run.")] = 3,
    timeout: Annotated[float | None, typer.Option(help="Seconds before the run is stopped as TIMEOUT.")] = None,
    connection: Annotated[list[str] | None, typer.Option(help="Connection name. Repeatable.")] = None,
    app_id: Annotated[str | None, typer.Option(help="Key of the stored positions [default: the job name].")] = None,
    catalog_database: Annotated[
        str | None, typer.Option(help="Register the job's tables in this catalog database.")
    ] = None,
    replace: Annotated[bool, typer.Option("--replace", help="Update the job if it exists.")] = False,
    db: Db = None,
) -> None:
    """Create (or with --replace update) a job."""
    from stream_etl.control.jobs import Jobs, parse_spec

    with _errors(), _store(db) as store:
        spec = parse_spec(
            {
                "name": name,
                "kind": kind,
                "topology": topology,
                "arguments": _pairs(arg, "argument"),
                "workers": workers,
                "mode": mode.replace("-", "_"),
                "max_retries": max_retries,
                "timeout_s": timeout,
                "connections": connection or [],
                "app_id": app_id,
                "catalog_database": catalog_database,
            }
        )
        info = Jobs(store).create(spec, replace=replace)
    _print_json(_dump(info))


@jobs_app.command("list")
def jobs_list(db: Db = None, as_json: AsJson = False) -> None:
    """List jobs."""
    from stream_etl.control.jobs import Jobs

    with _errors(), _store(db) as store:
        found = Jobs(store).list_all()

    def row(j: Any) -> list[str]:
        what = j.topology if j.kind == "topology" else f"{j.kind} {j.arguments.get('table', '')}"
        return [j.name, what, str(j.workers), j.mode, str(j.max_retries), ", ".join(j.connections)]

    _print_list(found, as_json, ("job", "topology", "workers", "mode", "max retries", "connections"), row)


@jobs_app.command("show")
def jobs_show(name: Annotated[str, typer.Argument(help="Job name.")], db: Db = None) -> None:
    """Show a job."""
    from stream_etl.control.jobs import Jobs

    with _errors(), _store(db) as store:
        info = Jobs(store).get(name)
    _print_json(_dump(info))


@jobs_app.command("delete")
def jobs_delete(name: Annotated[str, typer.Argument(help="Job name.")], db: Db = None) -> None:
    """Delete a job and its run history (refused while a run is active)."""
    from stream_etl.control.jobs import Jobs

    with _errors(), _store(db) as store:
        Jobs(store).delete(name)
    err.print(f"job {name} deleted")


@jobs_app.command("start")
def jobs_start(name: Annotated[str, typer.Argument(help="Job name.")], db: Db = None) -> None:
    """Queue a run of the job; a `stream-etl worker` claims it. Prints the run id."""
    from stream_etl.control.jobs import Jobs

    with _errors(), _store(db) as store:
        run = Jobs(store).start(name)
    out.print(run.id)
    err.print(f"run {run.id} of job {name} is WAITING for a worker supervisor")


# runs -------------------------------------------------------------------------------------


@runs_app.command("list")
def runs_list(
    job: Annotated[str | None, typer.Option(help="Only this job's runs.")] = None,
    state: Annotated[str | None, typer.Option(help="Only runs in this state.")] = None,
    limit: Annotated[int, typer.Option(min=1)] = 50,
    db: Db = None,
    as_json: AsJson = False,
) -> None:
    """List runs, newest first."""
    from stream_etl.control.jobs import Jobs

    with _errors(), _store(db) as store:
        found = Jobs(store).list_runs(job=job, state=state, limit=limit)
    _print_list(
        found,
        as_json,
        ("run", "job", "state", "attempts", "started", "ended", "error"),
        lambda r: [
            str(r.id),
            r.job,
            r.state,
            str(r.attempts),
            str(r.started_at or "")[:19],
            str(r.ended_at or "")[:19],
            (r.error or "")[:80],
        ],
    )


@runs_app.command("show")
def runs_show(run_id: Annotated[int, typer.Argument(help="Run id.")], db: Db = None) -> None:
    """Show a run: state, attempts, error, metrics."""
    from stream_etl.control.jobs import Jobs

    with _errors(), _store(db) as store:
        info = Jobs(store).get_run(run_id)
    _print_json(_dump(info))


@runs_app.command("stop")
def runs_stop(run_id: Annotated[int, typer.Argument(help="Run id.")], db: Db = None) -> None:
    """Stop a run gracefully (workers finish their batch and commit)."""
    from stream_etl.control.jobs import Jobs

    with _errors(), _store(db) as store:
        info = Jobs(store).stop(run_id)
    err.print(f"run {run_id}: {info.state}")


@runs_app.command("wait")
def runs_wait(
    run_id: Annotated[int, typer.Argument(help="Run id.")],
    timeout: Annotated[float, typer.Option(help="Seconds to wait at most.")] = 3600.0,
    db: Db = None,
) -> None:
    """Wait until a run ends; print it. Exit code 0 when it SUCCEEDED, 1 otherwise."""
    from stream_etl.control.jobs import FINISHED, Jobs

    with _errors(), _store(db) as store:
        jobs = Jobs(store)
        deadline = time.monotonic() + timeout
        info = jobs.get_run(run_id)
        while info.state not in FINISHED and time.monotonic() < deadline:
            time.sleep(0.5)
            info = jobs.get_run(run_id)
    _print_json(_dump(info))
    if info.state != "SUCCEEDED":
        raise typer.Exit(1)


# tokens -----------------------------------------------------------------------------------


@tokens_app.command("create")
def tokens_create(
    name: Annotated[str, typer.Argument(help="Token name (who or what uses it).")],
    role: Annotated[str, typer.Option(help="viewer, operator or admin.")] = "viewer",
    db: Db = None,
) -> None:
    """Create an API token; it is printed once (only its hash is stored)."""
    from stream_etl.control.tokens import Tokens

    with _errors(), _store(db) as store:
        token, _info = Tokens(store).create(name, role)
    out.print(token, highlight=False)
    err.print(f"token {name} ({role}) created: keep it now, it cannot be shown again")


@tokens_app.command("list")
def tokens_list(db: Db = None) -> None:
    """List tokens (names and roles; tokens themselves are not stored)."""
    from stream_etl.control.tokens import Tokens

    with _errors(), _store(db) as store:
        found = Tokens(store).list_all()
    table = new_table("token", "role", "created", "revoked")
    for t in found:
        table.add_row(t.name, t.role, str(t.created_at)[:19], str(t.revoked_at or "")[:19])
    out.print(table)


@tokens_app.command("revoke")
def tokens_revoke(name: Annotated[str, typer.Argument(help="Token name.")], db: Db = None) -> None:
    """Revoke a token."""
    from stream_etl.control.tokens import Tokens

    with _errors(), _store(db) as store:
        Tokens(store).revoke(name)
    err.print(f"token {name} revoked")


# api and worker ---------------------------------------------------------------------------


@api_app.command("serve")
def api_serve(
    host: Annotated[str, typer.Option(help="Address to bind (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8080,
    db: Db = None,
    key: Key = None,
    key_file: KeyFile = None,
) -> None:
    """Serve the REST API (bearer tokens from `stream-etl tokens create`)."""
    import uvicorn

    from stream_etl.control.api import create_app

    with _errors():
        store = _store(db)
        application = create_app(store, _connections(store, key, key_file, need_key=False).box)
    try:
        uvicorn.run(application, host=host, port=port, log_level="info")
    finally:
        store.close()


def worker(
    log_dir: Annotated[Path, typer.Option(help="Where the workers' logs and summaries go.")] = Path(
        ".stream-etl/worker"
    ),
    poll_interval: Annotated[
        float, typer.Option(min=0.05, help="Seconds between looks at the store and the workers.")
    ] = 1.0,
    backoff: Annotated[float, typer.Option(min=0, help="First restart delay in seconds (doubles per restart).")] = 1.0,
    max_backoff: Annotated[float, typer.Option(min=0, help="Longest restart delay in seconds.")] = 60.0,
    stop_grace: Annotated[float, typer.Option(min=0, help="Seconds workers get to stop after SIGTERM.")] = 30.0,
    max_runs: Annotated[int, typer.Option(min=1, help="Runs this supervisor runs at once.")] = 8,
    name: Annotated[str | None, typer.Option(help="Supervisor name [default: host:pid].")] = None,
    db: Db = None,
    key: Key = None,
    key_file: KeyFile = None,
) -> None:
    """Run the worker supervisor: claim job runs, start their workers, restart crashed ones, enforce timeouts."""
    import signal

    from stream_etl.control.supervisor import Supervisor

    with _errors():
        store = _store(db)
        supervisor = Supervisor(
            store,
            _connections(store, key, key_file, need_key=False),
            name=name,
            log_dir=log_dir,
            poll_interval_s=poll_interval,
            backoff_s=backoff,
            max_backoff_s=max_backoff,
            stop_grace_s=stop_grace,
            max_runs=max_runs,
        )
    previous = {s: signal.signal(s, lambda *_: supervisor.stop()) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        supervisor.serve()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        store.close()
