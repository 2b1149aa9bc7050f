"""`stream-etl crawlers ...`: create, list, show, delete and run crawlers; their runs; and
`stream-etl crawlers classifiers ...` for custom classifiers. Heavy imports stay inside the
commands (see :mod:`stream_etl.control.cli`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from stream_etl.control.cli import (
    AsJson,
    Db,
    Key,
    KeyFile,
    _dump,
    _errors,
    _pairs,
    _print_json,
    _print_list,
    _store,
    err,
    out,
)

if TYPE_CHECKING:
    from stream_etl.control.crawlers import CrawlerRunInfo, Crawlers
    from stream_etl.control.store import Store

crawlers_app = typer.Typer(
    help="Crawlers: classify Kafka topics, Kinesis streams, S3/local prefixes and Postgres tables into the catalog.",
    no_args_is_help=True,
)
classifiers_app = typer.Typer(help="Custom classifiers: grok, regex, json_path, csv.", no_args_is_help=True)
crawlers_app.add_typer(classifiers_app, name="classifiers")


def _crawlers(store: Store, key: str | None, key_file: Path | None) -> Crawlers:
    from stream_etl.control.cli import _connections
    from stream_etl.control.crawlers import Crawlers

    return Crawlers(store, _connections(store, key, key_file, need_key=False).box)


@crawlers_app.command("create")
def crawlers_create(
    name: Annotated[str, typer.Argument(help="Crawler name.")],
    database: Annotated[str, typer.Option(help="Catalog database of its tables (created if missing).")],
    kafka_topic: Annotated[list[str] | None, typer.Option(help="Kafka topic. Repeatable.")] = None,
    kinesis_stream: Annotated[list[str] | None, typer.Option(help="Kinesis stream. Repeatable.")] = None,
    s3_path: Annotated[list[str] | None, typer.Option(help="s3://bucket/prefix. Repeatable.")] = None,
    path: Annotated[list[str] | None, typer.Option(help="Local directory. Repeatable.")] = None,
    postgres_table: Annotated[
        list[str] | None, typer.Option(help="schema.table, '%' matches anything (public.%). Repeatable.")
    ] = None,
    connection: Annotated[
        list[str] | None, typer.Option(help="Connection for the targets of its kind. Repeatable, one per kind.")
    ] = None,
    classifier: Annotated[list[str] | None, typer.Option(help="Custom classifier, tried first. Repeatable.")] = None,
    exclude: Annotated[list[str] | None, typer.Option(help="Glob of keys to skip under prefixes. Repeatable.")] = None,
    schema_registry_url: Annotated[
        str | None, typer.Option(help="Confluent schema registry for Avro records in Kafka/Kinesis.")
    ] = None,
    sample_from: Annotated[
        str, typer.Option(help="Kafka: sample the last records of each partition (end) or the first (beginning).")
    ] = "end",
    table_prefix: Annotated[str, typer.Option(help="Prefix of the table names.")] = "",
    update_behavior: Annotated[str, typer.Option(help="A changed schema: update (new version) or log.")] = "update",
    delete_behavior: Annotated[
        str, typer.Option(help="Tables/columns gone: deprecate (mark), delete or log.")
    ] = "deprecate",
    recrawl_policy: Annotated[str, typer.Option(help="everything or new_folders_only.")] = "everything",
    sample_size: Annotated[int, typer.Option(min=1, help="Records per partition/shard, lines per file.")] = 100,
    description: Annotated[str, typer.Option(help="What it crawls.")] = "",
    replace: Annotated[bool, typer.Option("--replace", help="Update the crawler if it exists.")] = False,
    db: Db = None,
    key: Key = None,
    key_file: KeyFile = None,
) -> None:
    """Create (or with --replace update) a crawler. Example: stream-etl crawlers create orders --database lake --kafka-topic orders"""
    from stream_etl.control.connections import Connections
    from stream_etl.control.crawl_targets import CONNECTION_KINDS
    from stream_etl.control.crawlers import parse_spec
    from stream_etl.errors import ConfigurationError

    with _errors(), _store(db) as store:
        by_kind: dict[str, str] = {}
        for conn in connection or []:
            kind = Connections(store, None).get(conn).kind
            if kind in by_kind:
                msg = f"connections {by_kind[kind]!r} and {conn!r} are both {kind}: give one per kind"
                raise ConfigurationError(msg)
            by_kind[kind] = conn
        if sample_from not in ("end", "beginning"):
            msg = f"--sample-from must be end or beginning, not {sample_from!r}"
            raise ConfigurationError(msg)
        options = {"schema_registry_url": schema_registry_url} if schema_registry_url else {}
        targets: list[dict[str, Any]] = []
        for kind, paths in (
            ("kafka", kafka_topic),
            ("kinesis", kinesis_stream),
            ("s3", s3_path),
            ("path", [str(Path(p).resolve()) for p in path or []]),
            ("postgres", postgres_table),
        ):
            for target_path in paths or []:
                target: dict[str, Any] = {"kind": kind, "path": target_path}
                if kind_connection := by_kind.get(CONNECTION_KINDS[kind]):
                    target["connection"] = kind_connection
                if kind in ("s3", "path") and exclude:
                    target["exclusions"] = list(exclude)
                if kind == "kafka" and sample_from != "end":
                    target["options"] = {**options, "sample_from": sample_from}
                elif kind in ("kafka", "kinesis") and options:
                    target["options"] = options
                targets.append(target)
        if not targets:
            msg = "give at least one target: --kafka-topic, --kinesis-stream, --s3-path, --path or --postgres-table"
            raise ConfigurationError(msg)
        spec = parse_spec(
            {
                "name": name,
                "database": database,
                "targets": targets,
                "classifiers": classifier or [],
                "table_prefix": table_prefix,
                "update_behavior": update_behavior,
                "delete_behavior": delete_behavior,
                "recrawl_policy": recrawl_policy.replace("-", "_"),
                "sample_size": sample_size,
                "description": description,
            }
        )
        info = _crawlers(store, key, key_file).create(spec, replace=replace)
    _print_json(_dump(info))


@crawlers_app.command("list")
def crawlers_list(db: Db = None, as_json: AsJson = False) -> None:
    """List crawlers with their last run."""
    from stream_etl.control.crawlers import Crawlers

    with _errors(), _store(db) as store:
        found = Crawlers(store).list_all()

    def row(c: Any) -> list[str]:
        last = f"{c.last_run.state} {str(c.last_run.started_at)[:19]}" if c.last_run else ""
        targets = ", ".join(t.describe() for t in c.targets)
        return [c.name, c.database, targets, f"{c.update_behavior}/{c.delete_behavior}/{c.recrawl_policy}", last]

    _print_list(found, as_json, ("crawler", "database", "targets", "policy", "last run"), row)


@crawlers_app.command("show")
def crawlers_show(name: Annotated[str, typer.Argument(help="Crawler name.")], db: Db = None) -> None:
    """Show a crawler (JSON): targets, policies, classifiers, last run."""
    from stream_etl.control.crawlers import Crawlers

    with _errors(), _store(db) as store:
        info = Crawlers(store).get(name)
    _print_json(_dump(info))


@crawlers_app.command("delete")
def crawlers_delete(name: Annotated[str, typer.Argument(help="Crawler name.")], db: Db = None) -> None:
    """Delete a crawler and its run history (its tables stay in the catalog)."""
    from stream_etl.control.crawlers import Crawlers

    with _errors(), _store(db) as store:
        Crawlers(store).delete(name)
    err.print(f"crawler {name} deleted")


@crawlers_app.command("run")
def crawlers_run(
    name: Annotated[str, typer.Argument(help="Crawler name.")],
    prop: Annotated[list[str] | None, typer.Option("--property", help="Run property key=value. Repeatable.")] = None,
    db: Db = None,
    key: Key = None,
    key_file: KeyFile = None,
    as_json: AsJson = False,
) -> None:
    """Crawl now and print what changed. Exit code 0 when the run SUCCEEDED, 1 when it FAILED."""
    with _errors(), _store(db) as store:
        crawlers = _crawlers(store, key, key_file)
        with err.status(f"crawling {name} ..."):
            run = crawlers.run(name, run_properties=_pairs(prop, "property"))
    if as_json:
        _print_json(_dump(run))
    else:
        _print_changes(run)
    if run.state != "SUCCEEDED":
        raise typer.Exit(1)


def _line(text: str) -> None:
    out.print(text, soft_wrap=True, highlight=False, markup=False)


def _print_changes(run: CrawlerRunInfo) -> None:
    changes = run.changes
    for created in changes.get("tables_created", []):
        _line(f"created  {created['table']} ({created['classification']}): {', '.join(created['columns'])}")
    for updated in changes.get("tables_updated", []):
        _line(f"updated  {updated['table']} to schema version {updated['version']}: {_diff(updated['diff'])}")
    for logged in changes.get("schema_changes_logged", []):
        _line(f"logged   {logged['table']} (not applied): {_diff(logged['diff'])}")
    for kind in ("tables_deprecated", "tables_deleted", "tables_missing"):
        for table in changes.get(kind, []):
            _line(f"{kind.split('_')[1]:<8} {table}")
    for columns in changes.get("columns_deprecated", []):
        _line(f"deprecated columns of {columns['table']}: {', '.join(columns['columns'])}")
    for partition in changes.get("partitions_added", []):
        _line(f"partition {partition['table']} {'/'.join(partition['values'])} at {partition['location']}")
    for location in changes.get("unclassified", []):
        _line(f"UNKNOWN  {location} (no classifier recognised it)")
    counts = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in changes.get("counts", {}).items())
    err.print(f"run {run.id}: {run.state}" + (f" ({counts})" if counts else ""), highlight=False)
    if run.error:
        err.print(f"[red]error:[/red] {run.error}", highlight=False, soft_wrap=True)


def _diff(diff: dict[str, Any]) -> str:
    parts = [f"+{c}" for c in diff.get("added", [])] + [f"-{c}" for c in diff.get("removed", [])]
    parts += [f"~{c['column']} {c['old']} -> {c['new']}" for c in diff.get("changed", [])]
    return ", ".join(parts)


@crawlers_app.command("runs")
def crawlers_runs(
    name: Annotated[str | None, typer.Argument(help="Only this crawler's runs.")] = None,
    limit: Annotated[int, typer.Option(min=1)] = 50,
    db: Db = None,
    as_json: AsJson = False,
) -> None:
    """A crawler's runs (or all crawlers'), newest first, with what each changed."""
    from stream_etl.control.crawlers import Crawlers

    with _errors(), _store(db) as store:
        found = Crawlers(store).runs(name, limit=limit)

    def row(r: Any) -> list[str]:
        counts = r.changes.get("counts", {})
        return [
            str(r.id),
            r.crawler,
            r.state,
            str(r.started_at)[:19],
            f"{counts.get('tables_created', 0)}/{counts.get('tables_updated', 0)}",
            str(counts.get("partitions_added", 0)),
            (r.error or "")[:60],
        ]

    _print_list(found, as_json, ("run", "crawler", "state", "started", "tables +/~", "partitions +", "error"), row)


# classifiers ---------------------------------------------------------------------------------


@classifiers_app.command("create")
def classifiers_create(
    name: Annotated[str, typer.Argument(help="Classifier name.")],
    kind: Annotated[str, typer.Option(help="grok, regex, json_path or csv.")],
    pattern: Annotated[str | None, typer.Option(help="grok: %{IP:client} ...; regex: (?P<col>...).")] = None,
    custom_patterns_file: Annotated[
        Path | None, typer.Option(exists=True, dir_okay=False, help="grok: 'NAME regex' lines.")
    ] = None,
    json_path: Annotated[str | None, typer.Option(help="json_path: where the records are ($.records[*]).")] = None,
    delimiter: Annotated[str | None, typer.Option(help="csv: the delimiter.")] = None,
    quote_char: Annotated[str | None, typer.Option(help="csv: the quote character.")] = None,
    header: Annotated[str | None, typer.Option(help="csv: present, absent or detect.")] = None,
    column: Annotated[list[str] | None, typer.Option(help="csv: column name. Repeatable.")] = None,
    classification: Annotated[str | None, typer.Option(help="The classification it gives [default: name].")] = None,
    db: Db = None,
) -> None:
    """Create a custom classifier (crawlers try theirs before the built-in ones)."""
    from stream_etl.control.crawlers import Crawlers

    settings: dict[str, Any] = {
        "pattern": pattern,
        "custom_patterns": custom_patterns_file.read_text() if custom_patterns_file else None,
        "json_path": json_path,
        "delimiter": delimiter,
        "quote_char": quote_char,
        "header": header,
        "columns": column,
        "classification": classification,
    }
    with _errors(), _store(db) as store:
        info = Crawlers(store).create_classifier(name, kind, {k: v for k, v in settings.items() if v})
    _print_json(_dump(info))


@classifiers_app.command("list")
def classifiers_list(db: Db = None, as_json: AsJson = False) -> None:
    """List custom classifiers."""
    from stream_etl.control.crawlers import Crawlers

    with _errors(), _store(db) as store:
        found = Crawlers(store).classifiers()
    _print_list(
        found,
        as_json,
        ("classifier", "kind", "settings"),
        lambda c: [c.name, c.kind, ", ".join(f"{k}={v}" for k, v in c.settings.items())],
    )


@classifiers_app.command("show")
def classifiers_show(name: Annotated[str, typer.Argument(help="Classifier name.")], db: Db = None) -> None:
    """Show a custom classifier."""
    from stream_etl.control.crawlers import Crawlers

    with _errors(), _store(db) as store:
        info = Crawlers(store).get_classifier(name)
    _print_json(_dump(info))


@classifiers_app.command("delete")
def classifiers_delete(name: Annotated[str, typer.Argument(help="Classifier name.")], db: Db = None) -> None:
    """Delete a custom classifier (refused while a crawler uses it)."""
    from stream_etl.control.crawlers import Crawlers

    with _errors(), _store(db) as store:
        Crawlers(store).delete_classifier(name)
    err.print(f"classifier {name} deleted")
