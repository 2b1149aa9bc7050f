"""CLI of triggers and workflows: `stream-etl triggers|workflows ...` and `stream-etl scheduler`.

Heavy imports (SQLAlchemy, croniter, confluent-kafka) happen inside the commands, as in
:mod:`stream_etl.control.cli`, whose options, helpers and exit codes these commands share.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated, Any

import typer

from stream_etl.console import new_table
from stream_etl.control.cli import (
    AsJson,
    Db,
    Key,
    KeyFile,
    _connections,
    _dump,
    _errors,
    _pairs,
    _print_json,
    _print_list,
    _store,
)
from stream_etl.control.cli import err as _err
from stream_etl.control.cli import out as _out

if TYPE_CHECKING:
    from stream_etl.control.trigger_specs import FiringInfo
    from stream_etl.control.workflows import WorkflowRunInfo

triggers_app = typer.Typer(
    help="Triggers: on-demand, scheduled (cron), conditional (job/crawler end states), event (new data).",
    no_args_is_help=True,
)
workflows_app = typer.Typer(
    help="Workflows: DAGs of triggers, jobs and crawlers sharing run properties; runs, history, resume.",
    no_args_is_help=True,
)
scheduler_app = typer.Typer(help="Run the trigger scheduler (fires triggers, runs crawlers, advances workflows).")


def _conditions(items: list[str] | None) -> list[dict[str, str]]:
    """``job:NAME[=STATE]`` / ``crawler:NAME[=STATE]`` (state default SUCCEEDED)."""
    from stream_etl.errors import ConfigurationError

    found = []
    for item in items or []:
        target, _, state = item.partition("=")
        kind, sep, name = target.partition(":")
        if not sep or kind not in ("job", "crawler") or not name:
            msg = f"condition {item!r} is not job:NAME[=STATE] or crawler:NAME[=STATE]"
            raise ConfigurationError(msg)
        found.append({kind: name, "state": (state or "SUCCEEDED").upper()})
    return found


def _print_firing(firing: FiringInfo) -> None:
    _out.print(firing.id)
    for action in firing.actions:
        run = f"run {action.job_run_id}" if action.job_run_id else "waiting for a scheduler"
        detail = f": {action.error}" if action.error else ""
        _err.print(f"{action.kind} {action.name}: {action.state} ({run}){detail}", highlight=False)


# triggers ---------------------------------------------------------------------------------


@triggers_app.command("create")
def triggers_create(
    name: Annotated[str, typer.Argument(help="Trigger name.")],
    type_: Annotated[str, typer.Option("--type", help="on-demand, scheduled, conditional or event.")],
    job: Annotated[list[str] | None, typer.Option(help="Job to start. Repeatable.")] = None,
    crawler: Annotated[list[str] | None, typer.Option(help="Crawler to run. Repeatable.")] = None,
    arg: Annotated[list[str] | None, typer.Option("--arg", help="key=value for the jobs' runs. Repeatable.")] = None,
    schedule: Annotated[
        str | None, typer.Option(help="scheduled: cron in UTC, 5 fields ('0 2 * * *') or 6 with seconds first.")
    ] = None,
    condition: Annotated[
        list[str] | None,
        typer.Option(help="conditional: job:NAME[=STATE] or crawler:NAME[=STATE] (default SUCCEEDED). Repeatable."),
    ] = None,
    logical: Annotated[str, typer.Option(help="conditional: and (every condition) or any (one).")] = "and",
    event_topic: Annotated[str | None, typer.Option(help="event: a Kafka topic whose end offsets to watch.")] = None,
    event_location: Annotated[str | None, typer.Option(help="event: s3://bucket/prefix to watch for objects.")] = None,
    event_connection: Annotated[
        str | None, typer.Option(help="event: kafka or s3 connection [default: the scheduler's environment].")
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="event: new records or objects that fire at once.")] = 1,
    batch_window: Annotated[
        float, typer.Option(min=0.001, help="event: seconds after the first new data to fire anyway.")
    ] = 900.0,
    workflow: Annotated[str | None, typer.Option(help="The workflow this trigger belongs to.")] = None,
    disabled: Annotated[bool, typer.Option("--disabled", help="Create it disabled.")] = False,
    description: Annotated[str, typer.Option(help="What it is for.")] = "",
    replace: Annotated[bool, typer.Option("--replace", help="Update the trigger if it exists.")] = False,
    db: Db = None,
) -> None:
    """Create (or with --replace update) a trigger."""
    from stream_etl.control.trigger_specs import parse_trigger
    from stream_etl.control.triggers import Triggers

    with _errors(), _store(db) as store:
        arguments = _pairs(arg, "argument")
        event = None
        if event_topic or event_location:
            event = {
                "source": "kafka" if event_topic else "s3",
                "topic": event_topic,
                "location": event_location,
                "connection": event_connection,
                "batch_size": batch_size,
                "batch_window_s": batch_window,
            }
        conditions = _conditions(condition)
        spec = parse_trigger(
            {
                "name": name,
                "type": type_.upper().replace("-", "_"),
                "schedule": schedule,
                "predicate": {"logical": logical.upper(), "conditions": conditions} if conditions else None,
                "event": event,
                "actions": [{"job": j, "arguments": arguments} for j in job or []]
                + [{"crawler": c} for c in crawler or []],
                "enabled": not disabled,
                "workflow": workflow,
                "description": description,
            }
        )
        info = Triggers(store).create(spec, replace=replace)
    _print_json(_dump(info))


@triggers_app.command("list")
def triggers_list(
    workflow: Annotated[str | None, typer.Option(help="Only this workflow's triggers.")] = None,
    db: Db = None,
    as_json: AsJson = False,
) -> None:
    """List triggers."""
    from stream_etl.control.triggers import Triggers

    with _errors(), _store(db) as store:
        found = Triggers(store).list_all(workflow=workflow)

    def row(t: Any) -> list[str]:
        when = t.schedule or (t.event.topic or t.event.location if t.event else "") or ""
        if t.predicate:
            when = f" {t.predicate.logical} ".join(f"{c.kind}:{c.target}={c.state}" for c in t.predicate.conditions)
        actions = ", ".join(f"{a.kind}:{a.target}" for a in t.actions)
        return [t.name, t.type, str(when), actions, "yes" if t.enabled else "no", t.workflow or ""]

    _print_list(found, as_json, ("trigger", "type", "when", "actions", "enabled", "workflow"), row)


@triggers_app.command("show")
def triggers_show(name: Annotated[str, typer.Argument(help="Trigger name.")], db: Db = None) -> None:
    """Show a trigger and its latest firings."""
    from stream_etl.control.triggers import Triggers

    with _errors(), _store(db) as store:
        triggers = Triggers(store)
        info, firings = triggers.get(name), triggers.firings(name, limit=10)
    _print_json({**_dump(info), "firings": [_dump(f) for f in firings]})


@triggers_app.command("delete")
def triggers_delete(name: Annotated[str, typer.Argument(help="Trigger name.")], db: Db = None) -> None:
    """Delete a trigger and its firing history."""
    from stream_etl.control.triggers import Triggers

    with _errors(), _store(db) as store:
        Triggers(store).delete(name)
    _err.print(f"trigger {name} deleted")


@triggers_app.command("enable")
def triggers_enable(name: Annotated[str, typer.Argument(help="Trigger name.")], db: Db = None) -> None:
    """Enable a trigger: cron slots and ended runs count from now on."""
    from stream_etl.control.triggers import Triggers

    with _errors(), _store(db) as store:
        Triggers(store).set_enabled(name, True)
    _err.print(f"trigger {name} enabled")


@triggers_app.command("disable")
def triggers_disable(name: Annotated[str, typer.Argument(help="Trigger name.")], db: Db = None) -> None:
    """Disable a trigger: schedulers skip it."""
    from stream_etl.control.triggers import Triggers

    with _errors(), _store(db) as store:
        Triggers(store).set_enabled(name, False)
    _err.print(f"trigger {name} disabled")


@triggers_app.command("start")
def triggers_start(
    name: Annotated[str, typer.Argument(help="Trigger name (ON_DEMAND).")],
    prop: Annotated[
        list[str] | None, typer.Option("--property", help="Workflow run property key=value. Repeatable.")
    ] = None,
    db: Db = None,
) -> None:
    """Fire an on-demand trigger now (in a workflow: start a workflow run). Prints the firing id."""
    from stream_etl.control.triggers import Triggers

    with _errors(), _store(db) as store:
        firing = Triggers(store).start(name, run_properties=_pairs(prop, "property"))
    _print_firing(firing)


# workflows --------------------------------------------------------------------------------


@workflows_app.command("create")
def workflows_create(
    name: Annotated[str, typer.Argument(help="Workflow name.")],
    prop: Annotated[
        list[str] | None, typer.Option("--property", help="Default run property key=value. Repeatable.")
    ] = None,
    description: Annotated[str, typer.Option(help="What it does.")] = "",
    replace: Annotated[bool, typer.Option("--replace", help="Update the workflow if it exists.")] = False,
    db: Db = None,
) -> None:
    """Create a workflow; add its triggers with `stream-etl triggers create ... --workflow NAME`."""
    from stream_etl.control.workflows import Workflows, WorkflowSpec

    with _errors(), _store(db) as store:
        spec = WorkflowSpec(name=name, description=description, default_run_properties=_pairs(prop, "property"))
        info = Workflows(store).create(spec, replace=replace)
    _print_json(_dump(info))


@workflows_app.command("list")
def workflows_list(db: Db = None, as_json: AsJson = False) -> None:
    """List workflows."""
    from stream_etl.control.workflows import Workflows

    with _errors(), _store(db) as store:
        found = Workflows(store).list_all()

    def row(w: Any) -> list[str]:
        props = ", ".join(f"{k}={v}" for k, v in w.default_run_properties.items())
        return [w.name, str(len(w.graph.nodes)), props, w.description]

    _print_list(found, as_json, ("workflow", "nodes", "default run properties", "description"), row)


@workflows_app.command("show")
def workflows_show(name: Annotated[str, typer.Argument(help="Workflow name.")], db: Db = None) -> None:
    """Show a workflow with its graph (nodes: triggers, jobs, crawlers; edges)."""
    from stream_etl.control.workflows import Workflows

    with _errors(), _store(db) as store:
        info = Workflows(store).get(name)
    _print_json(_dump(info))


@workflows_app.command("delete")
def workflows_delete(name: Annotated[str, typer.Argument(help="Workflow name.")], db: Db = None) -> None:
    """Delete a workflow, its triggers and its run history (refused while a run is RUNNING)."""
    from stream_etl.control.workflows import Workflows

    with _errors(), _store(db) as store:
        Workflows(store).delete(name)
    _err.print(f"workflow {name} deleted")


def _wait_for(store: Any, run: WorkflowRunInfo, timeout: float) -> WorkflowRunInfo:
    from stream_etl.control.workflows import Workflows

    workflows, deadline = Workflows(store), time.monotonic() + timeout
    while run.state == "RUNNING" and time.monotonic() < deadline:
        time.sleep(0.5)
        run = workflows.get_run(run.id)
    return run


def _started(store: Any, run: WorkflowRunInfo, wait: bool, timeout: float) -> None:
    if not wait:
        _out.print(run.id)
        _err.print(f"workflow run {run.id} of {run.workflow} is RUNNING (a `stream-etl scheduler` moves it on)")
        return
    run = _wait_for(store, run, timeout)
    _print_json(_dump(run))
    if run.state != "COMPLETED":
        raise typer.Exit(1)


Wait = Annotated[bool, typer.Option("--wait", help="Wait until the run ends; exit 0 when it COMPLETED.")]
Timeout = Annotated[float, typer.Option(help="Seconds to wait at most.")]


@workflows_app.command("run")
def workflows_run(
    name: Annotated[str, typer.Argument(help="Workflow name.")],
    prop: Annotated[
        list[str] | None, typer.Option("--property", help="Run property key=value over the defaults. Repeatable.")
    ] = None,
    wait: Wait = False,
    timeout: Timeout = 3600.0,
    db: Db = None,
) -> None:
    """Start a workflow run (fires its start trigger). Prints the workflow run id."""
    from stream_etl.control.workflows import Workflows

    with _errors(), _store(db) as store:
        run = Workflows(store).run(name, run_properties=_pairs(prop, "property"))
        _started(store, run, wait, timeout)


@workflows_app.command("runs")
def workflows_runs(
    name: Annotated[str, typer.Argument(help="Workflow name.")],
    limit: Annotated[int, typer.Option(min=1)] = 20,
    db: Db = None,
    as_json: AsJson = False,
) -> None:
    """A workflow's runs, newest first."""
    from stream_etl.control.workflows import Workflows

    with _errors(), _store(db) as store:
        found = Workflows(store).runs(name, limit=limit)

    def row(r: Any) -> list[str]:
        nodes = ", ".join(f"{k}={v}" for k, v in r.statistics.items() if k != "total")
        return [
            str(r.id),
            r.state,
            str(r.started_at)[:19],
            str(r.ended_at or "")[:19],
            str(r.previous_run_id or ""),
            nodes,
            (r.error or "")[:60],
        ]

    _print_list(found, as_json, ("run", "state", "started", "ended", "resumes", "nodes", "error"), row)


@workflows_app.command("run-show")
def workflows_run_show(
    run_id: Annotated[int, typer.Argument(help="Workflow run id.")], db: Db = None, as_json: AsJson = False
) -> None:
    """A workflow run: its state, run properties, graph and each node's state and runs."""
    from stream_etl.control.workflows import Workflows

    with _errors(), _store(db) as store:
        run = Workflows(store).get_run(run_id)
    if as_json:
        _print_json(_dump(run))
        return
    props = ", ".join(f"{k}={v}" for k, v in run.run_properties.items())
    resumed = f", resumes run {run.previous_run_id}" if run.previous_run_id else ""
    _out.print(f"workflow run {run.id} of {run.workflow}: {run.state}{resumed}", highlight=False)
    _out.print(f"run properties: {props or '(none)'}", highlight=False)
    if run.error:
        _out.print(f"error: {run.error}", highlight=False)
    table = new_table("node", "state", "job runs / crawler runs", "started by", "error")
    for node in run.nodes:
        ids = ", ".join(str(r.job_run_id or r.crawler_run_id or "-") for r in node.runs)
        latest = node.runs[-1] if node.runs else None
        table.add_row(
            node.node, node.state, ids, latest.trigger if latest else "", (latest.error or "")[:60] if latest else ""
        )
    _out.print(table)
    for edge in run.graph.edges:
        _out.print(f"{edge.source} -> {edge.destination}" + (f" [{edge.state}]" if edge.state else ""), highlight=False)


@workflows_app.command("resume")
def workflows_resume(
    run_id: Annotated[int, typer.Argument(help="A FAILED or STOPPED workflow run's id.")],
    node: Annotated[
        list[str] | None, typer.Option(help="Node to run again (job:NAME, crawler:NAME) [default: the failed ones].")
    ] = None,
    wait: Wait = False,
    timeout: Timeout = 3600.0,
    db: Db = None,
) -> None:
    """Resume a failed workflow run: a new run re-runs the failed nodes and what follows them. Prints its id."""
    from stream_etl.control.workflows import Workflows

    with _errors(), _store(db) as store:
        run = Workflows(store).resume(run_id, nodes=node)
        _started(store, run, wait, timeout)


@workflows_app.command("stop")
def workflows_stop(run_id: Annotated[int, typer.Argument(help="Workflow run id.")], db: Db = None) -> None:
    """Stop a running workflow run (its job runs stop gracefully)."""
    from stream_etl.control.workflows import Workflows

    with _errors(), _store(db) as store:
        run = Workflows(store).stop(run_id)
    _err.print(f"workflow run {run_id}: {run.state}")


# scheduler --------------------------------------------------------------------------------


@scheduler_app.callback(invoke_without_command=True)
def scheduler(
    interval: Annotated[float, typer.Option(min=0.05, help="Seconds between evaluations of the triggers.")] = 5.0,
    crawler_threads: Annotated[int, typer.Option(min=1, help="Crawls run at once.")] = 4,
    name: Annotated[str | None, typer.Option(help="Scheduler name [default: host:pid].")] = None,
    db: Db = None,
    key: Key = None,
    key_file: KeyFile = None,
) -> None:
    """Run the trigger scheduler: fire cron, conditional and event triggers, run crawlers, advance workflow runs.

    Job runs it queues are run by a worker supervisor (`stream-etl worker`). Several schedulers
    may share a store: each trigger slot fires once. SIGTERM or Ctrl-C stops it.
    """
    import os
    import signal

    from stream_etl.control.scheduler import Scheduler

    with _errors():
        store = _store(db)
        running = Scheduler(
            store,
            _connections(store, key, key_file, need_key=False),
            name=name,
            interval_s=interval,
            crawler_threads=crawler_threads,
            environ=os.environ,
        )
    previous = {s: signal.signal(s, lambda *_: running.stop()) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        running.serve()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        store.close()
