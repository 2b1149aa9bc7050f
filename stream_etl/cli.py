"""The `stream-etl` command line (also `python -m stream_etl`).

The only place that reads environment variables (through :class:`Settings`).
Exit codes: 0 success, 1 a runtime failure, 2 bad usage or configuration,
130 forced stop (second Ctrl-C / SIGTERM).
"""

from __future__ import annotations

import gc
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any

import typer

from stream_etl import __version__
from stream_etl.console import LazyConsole, new_table
from stream_etl.context import RunContext, check_app_id
from stream_etl.control import cli as control_cli
from stream_etl.errors import ConfigurationError, StreamEtlError
from stream_etl.metrics import RunStats
from stream_etl.settings import Settings, parse_options, read_config_file

if TYPE_CHECKING:
    from stream_etl.catalog import TableCatalog
    from stream_etl.devstack import DevStack

_APP_SETTINGS: dict[str, Any] = {
    "help": "Streaming ETL from Kafka into Delta Lake, exactly once, on Arrow micro-batches.",
    "no_args_is_help": True,
    "add_completion": False,
    "pretty_exceptions_enable": False,
}
app = typer.Typer(**_APP_SETTINGS)
dev_app = typer.Typer(
    help="A local Kafka broker and S3 for development, as plain processes (no Docker).", no_args_is_help=True
)
table_app = typer.Typer(help="Look at and maintain Delta tables (compact, vacuum, checkpoint).", no_args_is_help=True)
app.add_typer(dev_app, name="dev")
app.add_typer(table_app, name="table")

out = LazyConsole()
err = LazyConsole(stderr=True)
log = logging.getLogger("stream_etl")

#: Default for ``run --shutdown-timeout``: below Kubernetes' 30 s termination grace period.
SHUTDOWN_TIMEOUT_S = 20.0

#: Settings from ``--config FILE``, under the environment's (set by the app callback).
_config_values: dict[str, str] = {}


def _version(value: bool) -> None:
    if value:
        out.print(f"stream-etl {__version__}")
        raise typer.Exit


@app.callback()
def _main(
    log_level: Annotated[
        str, typer.Option(help="DEBUG, INFO, WARNING or ERROR.", envvar="STREAM_ETL_LOG_LEVEL")
    ] = "INFO",
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="Settings file (TOML, or KEY=value lines) under the STREAM_ETL_* environment; must be chmod 600.",
            envvar="STREAM_ETL_CONFIG",
            dir_okay=False,
        ),
    ] = None,
) -> None:
    logging.basicConfig(
        level=log_level.upper(), stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if "ARROW_DEFAULT_MEMORY_POOL" not in os.environ:
        # Arrow's default allocator (mimalloc) keeps freed batches mapped: with the system
        # allocator a worker's peak RSS is ~60 MB lower at the same speed (bench/README.md).
        import pyarrow as pa

        pa.set_memory_pool(pa.system_memory_pool())
    for noisy in ("deltalake", "botocore", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    _config_values.clear()
    if config is not None:
        with _errors():
            _config_values.update(read_config_file(config))


@contextmanager
def _errors() -> Iterator[None]:
    """Turn our errors into one clear line and an exit code."""
    try:
        yield
    except ConfigurationError as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    except StreamEtlError as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None


def load_settings() -> Settings:
    """Settings from the environment over ``--config``; a running `dev up` stack fills what is unset."""
    settings = Settings.from_environment(config=_config_values)
    if settings.kafka_bootstrap_servers or settings.s3_endpoint_url:
        return settings
    from stream_etl.devstack import DevStack

    state = DevStack(settings.dev_dir).load()
    if state is None:
        return settings
    # The stack's endpoints, under whatever else the environment sets (options, region...).
    environment = {k: v for k, v in os.environ.items() if k.startswith("STREAM_ETL_") and v}
    return Settings.from_environment({**state.environment(), **environment}, config=_config_values)


def _parse_args(items: list[str]) -> dict[str, str]:
    return parse_options(",".join(items)) if items else {}


# run ---------------------------------------------------------------------------


@app.command()
def run(
    topology: Annotated[
        str, typer.Argument(help="The topology: path/to/module.py[:attribute] (attribute defaults to 'topology').")
    ],
    until_caught_up: Annotated[
        bool, typer.Option("--until-caught-up", help="Read up to the end positions seen at start, commit, exit 0.")
    ] = False,
    app_id: Annotated[
        str | None, typer.Option(help="Job identity that keys stored positions (default: the topology's name).")
    ] = None,
    arg: Annotated[
        list[str] | None,
        typer.Option("--arg", help="Job argument key=value, read in the module with job_args(). Repeatable."),
    ] = None,
    json_summary: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    shutdown_timeout: Annotated[
        float,
        typer.Option(
            min=0.1,
            envvar="STREAM_ETL_SHUTDOWN_TIMEOUT_S",
            help="Seconds a SIGTERM/Ctrl-C may take to finish the batch in hand before the process exits anyway.",
        ),
    ] = SHUTDOWN_TIMEOUT_S,
) -> None:
    """Run a topology: consume, transform, commit to its sinks exactly once."""
    from stream_etl import memory
    from stream_etl.loader import load_topology
    from stream_etl.runloop import RunLoop

    collecting = gc.isenabled()
    gc.disable()  # until the source started: the collector has nothing to find in start-up's objects
    try:
        with _errors():
            memory.tune()  # before delta-rs loads and before any thread starts
            args = _parse_args(arg or [])
            loaded = load_topology(topology, args=args)
            ctx = RunContext(
                app_id=check_app_id(app_id or loaded.name),
                settings=load_settings(),
                mode="until_caught_up" if until_caught_up else "continuous",
                args=args,
                catalog=_catalog_hook(),
            )
            loop = RunLoop(loaded, ctx)
            if os.environ.get("STREAM_ETL_FAULT"):  # reliability tests: crash at a named point
                from stream_etl import faults

                faults.arm(os.environ["STREAM_ETL_FAULT"])
            with _signals(loop.stop, shutdown_timeout), _progress(until_caught_up) as progress:
                loop.on_batch = progress

                def started() -> None:  # while a group consumer waits for its join
                    progress.ready()
                    _tune_garbage_collector()

                loop.on_started = started
                try:
                    summary = loop.run()
                finally:
                    gc.unfreeze()  # let the interpreter's final collection see everything again
    finally:
        if collecting:
            gc.enable()
    if json_summary:
        out.print_json(
            json.dumps(
                {
                    "app_id": summary.app_id,
                    "caught_up": summary.caught_up,
                    "stats": summary.stats,
                    "sinks": summary.sinks,
                }
            )
        )
    else:
        _print_summary(summary.stats, summary.sinks, caught_up=summary.caught_up)


def _catalog_hook() -> TableCatalog | None:
    """The control plane's catalog, when a job's supervisor (or the user) names a catalog database."""
    if not os.environ.get("STREAM_ETL_CATALOG_DATABASE"):
        return None
    from stream_etl.control.hook import from_environment

    return from_environment(os.environ)


# preview ---------------------------------------------------------------------------


@app.command()
def preview(
    topology: Annotated[
        str, typer.Argument(help="The topology: path/to/module.py[:attribute] (attribute defaults to 'topology').")
    ],
    limit: Annotated[int, typer.Option(min=1, help="Records to read from the source.")] = 10,
    rows: Annotated[int, typer.Option(min=0, help="Rows to print per step.")] = 5,
    timeout: Annotated[float, typer.Option(min=0.1, help="Seconds to wait for records.")] = 10.0,
    app_id: Annotated[str | None, typer.Option(help="Job identity (default: the topology's name).")] = None,
    arg: Annotated[
        list[str] | None,
        typer.Option("--arg", help="Job argument key=value, read in the module with job_args(). Repeatable."),
    ] = None,
    check_sinks: Annotated[
        bool,
        typer.Option("--check-sinks", help="Also fit each sink's rows to its table's schema (reads the sinks)."),
    ] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Read a few records and show each step's output, schema and dead letters. Writes nothing.

    Kafka partitions are assigned directly (no consumer-group join, no offsets committed),
    no sink is opened: a following `run` reads the same records as it would have.
    """
    from stream_etl.loader import load_topology
    from stream_etl.preview import preview as run_preview

    with _errors():
        args = _parse_args(arg or [])
        loaded = load_topology(topology, args=args)
        ctx = RunContext(app_id=check_app_id(app_id or loaded.name), settings=load_settings(), args=args)
        result = run_preview(loaded, ctx, limit=limit, timeout_s=timeout, check_sinks=check_sinks)
    if json_output:
        out.print_json(json.dumps(_preview_json(result, rows), default=str))
        return
    if not result.records:
        err.print(f"no records arrived within {timeout:g}s")
        return
    out.print(f"[bold]{result.records}[/bold] record(s) read; nothing committed")
    for node in result.nodes:
        count = node.output.num_rows if node.output is not None else 0
        out.print(f"\n[bold]{node.name}[/bold] ({node.kind}: {node.description}): {count} row(s)", highlight=False)
        if node.output is not None:
            table = node.output.drop_columns([c for c in node.output.column_names if c.startswith("__stream_etl")])
            out.print(", ".join(f"{f.name}: {f.type}" for f in table.schema), highlight=False)
            if rows and table.num_rows:
                view = new_table(*table.column_names)
                for row in table.slice(0, rows).to_pylist():
                    view.add_row(*(_cell(v) for v in row.values()))
                out.print(view)
        for failure in node.failures[:rows]:
            out.print(
                f"  [red]dead letter[/red] row {failure.row}: {failure.error_class}: {failure.message}", highlight=False
            )
    dead = result.dead_letters
    out.print(f"\n[bold]dead letters[/bold]: {dead.num_rows if dead is not None else 0}")
    if dead is not None and rows:
        view = new_table("step", "error", "partition", "offset", "raw")
        for row in dead.slice(0, rows).to_pylist():
            view.add_row(row["step"], row["error"], row["partition"], str(row["offset"]), _cell(row["raw"]))
        out.print(view)


def _cell(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _preview_json(result: Any, rows: int) -> dict[str, Any]:
    nodes = []
    for node in result.nodes:
        output = node.output
        if output is not None:
            output = output.drop_columns([c for c in output.column_names if c.startswith("__stream_etl")])
        nodes.append(
            {
                "name": node.name,
                "kind": node.kind,
                "description": node.description,
                "rows": output.num_rows if output is not None else 0,
                "schema": [{"name": f.name, "type": str(f.type)} for f in output.schema]
                if output is not None
                else None,
                "head": output.slice(0, rows).to_pylist() if output is not None else [],
                "dead_letters": [
                    {"row": f.row, "error_class": f.error_class, "error": f.message} for f in node.failures
                ],
            }
        )
    dead = result.dead_letters
    return {
        "records": result.records,
        "nodes": nodes,
        "dead_letters": [
            {**row, "raw": row["raw"].decode("utf-8", "replace") if row["raw"] is not None else None}
            for row in (dead.to_pylist() if dead is not None else [])
        ],
    }


def _tune_garbage_collector() -> None:
    """Collect cycles rarely: a worker allocates millions of short-lived objects (one per
    Kafka message), and with the default thresholds the collector ran ~1,500 times per
    million records for ~0.7 s of GIL time. The hot path creates few cycles; freezing what
    exists after start-up also keeps modules and the topology out of every collection.

    Runs once the source started, with the collector paused until then. Nothing is collected
    first: start-up leaves ~600 unreachable objects (frozen with the rest), and a collection over
    its ~58,000 took ~45 ms of GIL time just as the fetch and prepare threads start."""
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)
    gc.enable()


@contextmanager
def _signals(stop: Callable[[], None], timeout_s: float = SHUTDOWN_TIMEOUT_S) -> Iterator[None]:
    """First SIGTERM/SIGINT: finish the batch in hand and exit, within ``timeout_s``. Second: exit now.

    Exiting without finishing is as safe as a crash: every commit is atomic, and the
    batch that was not committed is read again by the next run (docs/RELIABILITY.md)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    seen = {"count": 0}
    timers: list[threading.Timer] = []

    def force(reason: str) -> None:
        err.print(f"[red]{reason}: exiting now; uncommitted records are read again on the next run[/red]")
        sys.stderr.flush()
        os._exit(130)  # every commit is atomic: exiting now cannot harm a table

    def handle(signum: int, _frame: FrameType | None) -> None:
        seen["count"] += 1
        name = signal.Signals(signum).name
        if seen["count"] == 1:
            err.print(
                f"[yellow]{name}: finishing the current batch, then stopping "
                f"(within {timeout_s:g}s; {name} again to force)[/yellow]"
            )
            stop()
            watchdog = threading.Timer(timeout_s, force, args=(f"not stopped within {timeout_s:g}s",))
            watchdog.daemon = True
            watchdog.start()
            timers.append(watchdog)
        else:
            force(f"second {name}")

    previous = {s: signal.signal(s, handle) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        for timer in timers:
            timer.cancel()


@contextmanager
def _progress(until_caught_up: bool) -> Iterator[_Progress]:
    """A live line on a terminal; a log line every 10 s otherwise."""
    with ExitStack() as stack:
        yield _Progress(until_caught_up, stack)


class _Progress:
    """The run's progress line, chosen by :meth:`ready` (rich loads only then, ~20 ms: the CLI
    calls it once the source started, while a group consumer waits for its join)."""

    def __init__(self, until_caught_up: bool, stack: ExitStack) -> None:
        self.until_caught_up, self.stack = until_caught_up, stack
        self.started = time.monotonic()
        self._line: Callable[[RunStats], None] | None = None

    def ready(self) -> None:
        if self._line is None:
            self._line = _progress_line(self.until_caught_up, self.started, self.stack)

    def __call__(self, stats: RunStats) -> None:
        self.ready()
        if self._line is not None:
            self._line(stats)


def _progress_line(until_caught_up: bool, started: float, stack: ExitStack) -> Callable[[RunStats], None]:
    if not err.is_terminal:
        last = {"at": started}

        def log_line(stats: RunStats) -> None:
            if time.monotonic() - last["at"] >= 10:
                last["at"] = time.monotonic()
                log.info("progress: %s", _short(stats))

        return log_line
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = [
        TextColumn("[bold]{task.description}"),
        BarColumn() if until_caught_up else TextColumn(""),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
    ]
    progress = stack.enter_context(Progress(*columns, console=err.console, transient=True))
    task = progress.add_task("records", total=None, detail="")

    def update(stats: RunStats) -> None:
        progress.update(task, completed=stats.records_in, detail=_short(stats))

    return update


def _short(stats: RunStats) -> str:
    data = stats.as_dict()
    return (
        f"written {data['written']:,}  filtered {data['filtered']:,}  dead-lettered {data['dead_lettered']:,}"
        f"  {data['records_per_s']:,.0f} rec/s"
    )


def _print_summary(stats: dict[str, Any], sinks: dict[str, dict[str, Any]], *, caught_up: bool) -> None:
    table = new_table(title="run summary" + (" (caught up)" if caught_up else ""), show_header=False)
    for key in (
        "records_in",
        "written",
        "filtered",
        "dead_lettered",
        "already_committed",
        "batches",
        "commits",
        "conflicts",
        "elapsed_s",
        "records_per_s",
    ):
        table.add_row(key.replace("_", " "), f"{stats[key]:,}" if isinstance(stats[key], int) else str(stats[key]))
    out.print(table)
    sink_table = new_table("sink", "location", "table version", "rows in table")
    for name, info in sinks.items():
        sink_table.add_row(name, str(info.get("location")), str(info.get("version")), f"{info.get('rows', '')}")
    out.print(sink_table)


# produce ----------------------------------------------------------------------------


@app.command()
def produce(
    topic: Annotated[str, typer.Argument(help="Topic to write to (created when missing).")],
    count: Annotated[int, typer.Option(min=1, help="How many sample records.")] = 10_000,
    partitions: Annotated[int, typer.Option(min=1, help="Partitions when the topic is created.")] = 4,
    start: Annotated[int, typer.Option(min=0, help="Id of the first sample record.")] = 0,
    bad_every: Annotated[int, typer.Option(min=0, help="Make every n-th record malformed JSON (0: none).")] = 0,
    rate: Annotated[float, typer.Option(min=0, help="Records per second (0: as fast as possible).")] = 0,
    file: Annotated[
        Path | None,
        typer.Option(exists=True, dir_okay=False, help="Produce the lines of this file instead of samples."),
    ] = None,
) -> None:
    """Produce sample orders (or a file's lines) to a Kafka topic."""
    from connectors.kafka.admin import ensure_topic
    from connectors.kafka.admin import produce as produce_values
    from stream_etl.samples import orders

    with _errors():
        settings = load_settings()
        bootstrap = settings.kafka_bootstrap_servers
        if not bootstrap:
            msg = "no Kafka to produce to: set STREAM_ETL_KAFKA_BOOTSTRAP_SERVERS or run `stream-etl dev up`"
            raise ConfigurationError(msg)
        created = ensure_topic(bootstrap, topic, partitions=partitions, options=settings.kafka_config())
        values = _file_lines(file) if file else orders(count, start=start, bad_every=bad_every)
        total = None if file else count
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        with Progress(
            TextColumn("producing"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err.console,
            transient=True,
            disable=not err.is_terminal,
        ) as progress:
            task = progress.add_task("produce", total=total)
            sent = produce_values(
                bootstrap,
                topic,
                values,
                options=settings.kafka_config(),
                on_progress=lambda n: progress.update(task, completed=n),
                rate=rate or None,
            )
    note = f" (created with {partitions} partitions)" if created else ""
    err.print(f"produced {sent:,} records to {topic}{note}")


def _file_lines(path: Path) -> Iterator[bytes]:
    with path.open("rb") as handle:
        for line in handle:
            stripped = line.rstrip(b"\r\n")
            if stripped:
                yield stripped


# table ------------------------------------------------------------------------------


@table_app.command("show")
def table_show(
    uri: Annotated[str, typer.Argument(help="Table location: s3://bucket/path or a local path.")],
    limit: Annotated[int, typer.Option(min=0, help="Rows to print.")] = 5,
) -> None:
    """Print a Delta table's version, row count, schema and first rows."""
    import pyarrow as pa
    from deltalake import DeltaTable, QueryBuilder
    from deltalake.exceptions import TableNotFoundError

    from connectors.delta.config import storage_options

    with _errors():
        try:
            table = DeltaTable(uri, storage_options=storage_options(uri, load_settings(), None) or None)
        except TableNotFoundError as exc:
            msg = f"no Delta table at {uri}"
            raise ConfigurationError(msg) from exc
        # delta-rs's own engine, not a pyarrow dataset over delta-rs's Python filesystem: a
        # dataset's head() leaves read-ahead threads calling into Python, which now and then
        # crashed the interpreter at exit (apache/arrow#38352's kind).
        query = QueryBuilder().register("t", table)
        rows = pa.table(query.execute("SELECT count(*) AS n FROM t"))["n"][0].as_py()
        head = pa.table(query.execute(f"SELECT * FROM t LIMIT {int(limit)}")) if limit else None  # noqa: S608 - an int
        schema = pa.schema(table.schema().to_arrow())
    out.print(f"[bold]{uri}[/bold]  version {table.version()}  rows {rows:,}")
    out.print(", ".join(f"{f.name}: {f.type}" for f in schema))
    if head is None or not head.num_rows:
        return
    if len(head.column_names) <= 6:
        view = new_table(*head.column_names)
        for row in head.to_pylist():
            view.add_row(*(str(v) for v in row.values()))
        out.print(view)
        return
    for number, row in enumerate(head.to_pylist(), start=1):  # wide rows: one block per row
        view = new_table(show_header=False, title=f"row {number}", title_justify="left")
        for name, value in row.items():
            view.add_row(name, str(value))
        out.print(view)


from stream_etl import cli_table  # noqa: E402 - after table_app; it imports nothing heavy

cli_table.register(table_app)


# dev --------------------------------------------------------------------------------


def _stack(
    state_dir: Path | None,
    kafka_port: int = 9092,
    s3_port: int = 8333,
    bucket: str = "lake",
    kinesis_port: int | None = None,
) -> DevStack:
    from stream_etl.devstack import DevStack

    return DevStack(
        state_dir or Settings.from_environment(config=_config_values).dev_dir,
        kafka_port=kafka_port,
        s3_port=s3_port,
        bucket=bucket,
        kinesis_port=kinesis_port,
    )


StateDir = Annotated[
    Path | None, typer.Option(help="Where the stack keeps pids, logs and data [default: .stream-etl/dev].")
]


@dev_app.command("up")
def dev_up(
    state_dir: StateDir = None,
    kafka_port: Annotated[int, typer.Option(help="Kafka port on 127.0.0.1.")] = 9092,
    s3_port: Annotated[int, typer.Option(help="S3 port on 127.0.0.1.")] = 8333,
    bucket: Annotated[str, typer.Option(help="Bucket to create.")] = "lake",
    kinesis: Annotated[bool, typer.Option("--kinesis", help="Also start kinesalite (`make kinesalite`).")] = False,
    kinesis_port: Annotated[int, typer.Option(help="Kinesis (kinesalite) port on 127.0.0.1.")] = 4567,
) -> None:
    """Start the local broker and S3 (and Kinesis); print their settings as shell exports."""
    stack = _stack(state_dir, kafka_port, s3_port, bucket, kinesis_port if kinesis else None)
    if stack.load() is None and stack.has_old_data():
        err.print(
            "[yellow]note:[/yellow] S3 keeps the data of an earlier run, but the broker starts empty (it keeps topics "
            "in memory). Tables there remember offsets of topics that are gone: records of a re-created topic at "
            "offsets already stored would count as 'already committed'. For a clean slate: stream-etl dev down --purge"
        )
    with _errors():
        started = time.monotonic()
        with err.status("starting the local Kafka broker and S3"):
            state = stack.up()
    kinesis_note = f", Kinesis {state.kinesis_endpoint}" if state.kinesis_endpoint else ""
    err.print(
        f"ready in {time.monotonic() - started:.1f}s: Kafka {state.kafka_bootstrap}, S3 {state.s3_endpoint} (bucket {state.bucket}){kinesis_note}; state in {stack.state_dir}"
    )
    err.print('stream-etl commands run here find them on their own; for other tools: eval "$(stream-etl dev up)"')
    for key, value in state.environment().items():
        out.print(f"export {key}={value}", highlight=False, soft_wrap=True)


@dev_app.command("down")
def dev_down(
    state_dir: StateDir = None,
    purge: Annotated[bool, typer.Option("--purge", help="Also delete the S3 data (tables).")] = False,
) -> None:
    """Stop the local broker and S3. Kafka's topics are lost (the broker keeps them in memory)."""
    stopped = _stack(state_dir).down(purge=purge)
    err.print(("stopped" if stopped else "nothing was running") + ("; S3 data deleted" if purge else ""))


@dev_app.command("status")
def dev_status(state_dir: StateDir = None) -> None:
    """Show whether the local stack runs, and where. Exit code 1 when it does not."""
    status = _stack(state_dir).status()
    out.print_json(json.dumps(status))
    if not status["running"]:
        raise typer.Exit(1)


control_cli.register(app)  # catalog, connections, jobs, runs, tokens, api, worker (imports nothing heavy)


def main() -> None:
    _app_for(sys.argv[1:])()


def _app_for(argv: list[str]) -> typer.Typer:
    """The whole app, or for ``run`` one with only that command: Typer builds the options of
    every command (the control plane's ~80) before it runs one, ~0.15 s of a worker's start-up."""
    if _command_name(argv) != "run":
        return app
    slim = typer.Typer(**_APP_SETTINGS)
    slim.callback()(_main)
    slim.command()(run)
    return slim


def _command_name(argv: list[str]) -> str | None:
    """The command ``argv`` names after the app's own options, or None (``--help``, ``--version``)."""
    args = iter(argv)
    for arg in args:
        if arg in ("--log-level", "--config"):
            next(args, None)
        elif not arg.startswith("-"):
            return arg
        elif not arg.startswith(("--log-level=", "--config=")):
            return None
    return None
