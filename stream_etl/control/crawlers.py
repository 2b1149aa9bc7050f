"""Crawlers: read Kafka topics, Kinesis streams, S3 or local prefixes and Postgres tables,
classify what they hold and keep the catalog's tables, schemas and partitions up to date.

In the spirit of AWS Glue crawlers: a crawler has targets, a catalog database, custom
classifiers (tried before the built-in ones), a table prefix, a schema-change policy
(:mod:`stream_etl.control.crawl_changes`), a recrawl policy (``everything`` or
``new_folders_only``: only partition folders not registered yet are read, as Glue's
``CRAWL_NEW_FOLDERS_ONLY``) and a sample size. ``Crawlers.run`` crawls in the calling
thread and records the run: RUNNING, then SUCCEEDED or FAILED with the error, and what
it changed (:class:`~stream_etl.control.crawl_changes.Changes`)::

    crawlers = Crawlers(store, box)
    crawlers.create(CrawlerSpec(name="orders", database="lake",
                                targets=[Target(kind="kafka", path="orders")]))
    run = crawlers.run("orders")      # CrawlerRunInfo(state="SUCCEEDED", changes={...})
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from stream_etl.control.catalog import Catalog, check_name
from stream_etl.control.classifiers import ClassifierInfo, CustomClassifier, check_settings
from stream_etl.control.crawl_changes import CatalogWriter, Changes, DeleteBehavior, UpdateBehavior
from stream_etl.control.crawl_targets import CONNECTION_KINDS, CrawlContext, Target, crawl, settings_for
from stream_etl.control.crawler_models import Classifier, Crawler, CrawlerRun
from stream_etl.control.errors import InvalidState, NotFound, validated
from stream_etl.control.secrets import SecretBox
from stream_etl.control.store import Store, by_id, by_name, named_row
from stream_etl.errors import ConfigurationError
from stream_etl.formats.registry import StoreResolver

log = logging.getLogger(__name__)

RunState = Literal["RUNNING", "SUCCEEDED", "FAILED"]
RecrawlPolicy = Literal["everything", "new_folders_only"]
#: A RUNNING run older than this is from a process that died: it is marked FAILED.
STALE_AFTER = timedelta(hours=6)


class CrawlerSpec(BaseModel):
    name: str
    database: str
    targets: list[Target] = Field(min_length=1)
    classifiers: list[str] = Field(default_factory=list)
    table_prefix: str = ""
    update_behavior: UpdateBehavior = "update"
    delete_behavior: DeleteBehavior = "deprecate"
    recrawl_policy: RecrawlPolicy = "everything"
    sample_size: int = Field(default=100, ge=1, le=100_000)
    description: str = ""

    @model_validator(mode="after")
    def _policies(self) -> CrawlerSpec:
        if self.recrawl_policy == "new_folders_only" and (self.update_behavior, self.delete_behavior) != ("log", "log"):
            msg = (
                "recrawl policy new_folders_only reads only new folders, so it cannot judge schema changes or "
                "removals: use update_behavior='log' and delete_behavior='log' with it (as AWS Glue requires)"
            )
            raise ValueError(msg)
        return self

    @property
    def connections(self) -> list[str]:
        return sorted({t.connection for t in self.targets if t.connection})


class CrawlerRunInfo(BaseModel):
    id: int
    crawler: str
    state: RunState
    started_at: datetime
    ended_at: datetime | None
    error: str | None
    changes: dict[str, Any]


class CrawlerInfo(CrawlerSpec):
    created_at: datetime
    updated_at: datetime
    last_run: CrawlerRunInfo | None = None


def parse_spec(values: dict[str, Any]) -> CrawlerSpec:
    """A crawler from plain values (CLI), its problems as one ConfigurationError."""
    return validated(CrawlerSpec, values, "crawler")


def _run_info(row: CrawlerRun) -> CrawlerRunInfo:
    return CrawlerRunInfo(
        id=row.id,
        crawler=row.crawler.name,
        state=row.state,  # type: ignore[arg-type]
        started_at=row.started_at,
        ended_at=row.ended_at,
        error=row.error,
        changes=dict(row.changes),
    )


def _spec(row: Crawler) -> CrawlerSpec:
    return CrawlerSpec(
        name=row.name,
        database=row.database,
        targets=[Target.model_validate(t) for t in row.targets],
        classifiers=list(row.classifiers),
        table_prefix=row.table_prefix,
        update_behavior=row.update_behavior,  # type: ignore[arg-type]
        delete_behavior=row.delete_behavior,  # type: ignore[arg-type]
        recrawl_policy=row.recrawl_policy,  # type: ignore[arg-type]
        sample_size=row.sample_size,
        description=row.description,
    )


class Crawlers:
    def __init__(self, store: Store, box: SecretBox | None = None, *, environ: Mapping[str, str] | None = None) -> None:
        """``box`` decrypts the targets' connections; ``environ`` (default ``os.environ``) gives the
        engine's ``STREAM_ETL_*`` settings for targets without one."""
        self.store = store
        self.box = box
        self.environ = dict(os.environ if environ is None else environ)

    # crawlers ----------------------------------------------------------------------------

    def create(self, spec: CrawlerSpec, *, replace: bool = False) -> CrawlerInfo:
        """Create a crawler, or with ``replace`` update the one of that name (its runs stay)."""
        check_name("crawler", spec.name)
        check_name("database", spec.database)
        known = {c.name for c in self.classifiers()}
        if missing := [c for c in spec.classifiers if c not in known]:
            msg = f"classifier(s) {missing} do not exist: create them with `stream-etl crawlers classifiers create`"
            raise ConfigurationError(msg)
        self._check_connections(spec)
        with self.store.creating("crawler", spec.name) as session:
            row = named_row(session, Crawler, spec.name, replace=replace)
            row.description = spec.description
            row.targets = [t.model_dump(exclude_defaults=True) for t in spec.targets]
            row.database = spec.database
            row.classifiers = list(spec.classifiers)
            row.table_prefix = spec.table_prefix
            row.update_behavior = spec.update_behavior
            row.delete_behavior = spec.delete_behavior
            row.recrawl_policy = spec.recrawl_policy
            row.sample_size = spec.sample_size
            session.flush()
            return self._info(row)

    def _check_connections(self, spec: CrawlerSpec) -> None:
        from stream_etl.control.connections import Connections

        connections = Connections(self.store, self.box)
        for target in spec.targets:
            if target.connection is None:
                continue
            kind = connections.get(target.connection).kind
            if kind != CONNECTION_KINDS[target.kind]:
                msg = (
                    f"connection {target.connection!r} is a {kind} connection; a {target.kind} target needs "
                    f"a {CONNECTION_KINDS[target.kind]} connection"
                )
                raise ConfigurationError(msg)

    def get(self, name: str) -> CrawlerInfo:
        with self.store.session() as session:
            return self._info(self._row(session, name))

    def list_all(self) -> list[CrawlerInfo]:
        with self.store.session() as session:
            return [self._info(r) for r in session.scalars(select(Crawler).order_by(Crawler.name))]

    def delete(self, name: str) -> None:
        """Delete the crawler and its run history (its tables stay in the catalog)."""
        with self.store.session() as session:
            session.delete(self._row(session, name))

    # classifiers --------------------------------------------------------------------------

    def create_classifier(self, name: str, kind: str, settings: dict[str, Any]) -> ClassifierInfo:
        check_name("classifier", name)
        check_settings(kind, settings)
        with self.store.creating("classifier", name) as session:
            session.add(Classifier(name=name, kind=kind, settings=dict(settings)))
        return ClassifierInfo(name=name, kind=kind, settings=dict(settings))  # type: ignore[arg-type]

    def classifiers(self) -> list[ClassifierInfo]:
        with self.store.session() as session:
            rows = session.scalars(select(Classifier).order_by(Classifier.name)).all()
            return [ClassifierInfo(name=r.name, kind=r.kind, settings=dict(r.settings)) for r in rows]  # type: ignore[arg-type]

    def get_classifier(self, name: str) -> ClassifierInfo:
        for found in self.classifiers():
            if found.name == name:
                return found
        raise NotFound(kind="classifier", name=name)

    def delete_classifier(self, name: str) -> None:
        users = [c.name for c in self.list_all() if name in c.classifiers]
        if users:
            msg = f"classifier {name!r} is used by crawler(s) {users}: remove it from them first"
            raise InvalidState(msg)
        with self.store.session() as session:
            session.delete(by_name(session, Classifier, name, kind="classifier"))

    # runs -----------------------------------------------------------------------------------

    def run(self, name: str, *, run_properties: dict[str, str] | None = None) -> CrawlerRunInfo:
        """Crawl now, in this thread; returns the finished run (SUCCEEDED or FAILED, with the error)."""
        return self.execute(self.begin(name, run_properties=run_properties))

    def start(self, name: str, *, run_properties: dict[str, str] | None = None) -> int:
        """Begin a run and crawl in a background thread; returns the run id (see :meth:`get_run`)."""
        run_id = self.begin(name, run_properties=run_properties)
        threading.Thread(target=self.execute, args=(run_id,), name=f"crawler-{name}", daemon=True).start()
        return run_id

    def begin(self, name: str, *, run_properties: dict[str, str] | None = None) -> int:
        """Record a RUNNING run (at most one per crawler); :meth:`execute` crawls it."""
        with self.store.session() as session:
            crawler = self._row(session, name)
            stale = datetime.now(UTC) - STALE_AFTER
            session.execute(
                update(CrawlerRun)
                .where(CrawlerRun.crawler_id == crawler.id, CrawlerRun.state == "RUNNING")
                .where(CrawlerRun.started_at < stale)
                .values(state="FAILED", error="abandoned: the process running it stopped", ended_at=datetime.now(UTC))
            )
            running = session.scalars(
                select(CrawlerRun).where(CrawlerRun.crawler_id == crawler.id, CrawlerRun.state == "RUNNING")
            ).first()
            if running is not None:
                msg = f"crawler {name!r} is already running (run {running.id}); wait for it to end"
                raise InvalidState(msg)
            row = CrawlerRun(crawler=crawler, state="RUNNING", changes={"run_properties": dict(run_properties or {})})
            session.add(row)
            session.flush()
            return row.id

    def execute(self, run_id: int) -> CrawlerRunInfo:
        with self.store.session() as session:
            row = by_id(session, CrawlerRun, run_id, kind="crawler run")
            spec, properties = _spec(row.crawler), dict(row.changes.get("run_properties", {}))
        changes = Changes(run_properties=properties)
        error: str | None = None
        try:
            self._crawl(spec, run_id, changes)
        except Exception as exc:  # the run records any failure; the caller reads it from the run
            error = self._masked(spec, f"{type(exc).__name__}: {exc}")
            log.warning("crawler %s run %s failed: %s", spec.name, run_id, error)
        changes.count()
        with self.store.session() as session:
            row = by_id(session, CrawlerRun, run_id, kind="crawler run")
            row.state = "FAILED" if error else "SUCCEEDED"
            row.error, row.ended_at = error, datetime.now(UTC)
            row.changes = changes.model_dump(mode="json")
            session.flush()
            return _run_info(row)

    def _crawl(self, spec: CrawlerSpec, run_id: int, changes: Changes) -> None:
        catalog = Catalog(self.store)
        catalog.create_database(spec.database, exist_ok=True)
        custom = [CustomClassifier(self.get_classifier(n)) for n in spec.classifiers]
        writer = CatalogWriter(
            catalog,
            spec.database,
            crawler=spec.name,
            run_id=run_id,
            table_prefix=spec.table_prefix,
            update_behavior=spec.update_behavior,
            delete_behavior=spec.delete_behavior,
            changes=changes,
        )
        owned = [t for t in catalog.list_tables(spec.database) if t.parameters.get("crawler") == spec.name]
        known = None
        if spec.recrawl_policy == "new_folders_only":
            known = frozenset(
                p.location
                for t in catalog.list_tables(spec.database)
                for p in catalog.list_partitions(spec.database, t.name)
            )
        done = []
        for target in spec.targets:
            context = CrawlContext(
                settings=settings_for(self.environ, self._environment(target)),
                sample_size=spec.sample_size,
                custom=custom,
                connection=self._resolve(target),
                known_folders=known,
                known_tables=frozenset(t.location for t in owned),
                resolver=StoreResolver(self.store),
            )
            crawled = crawl(target, context)
            for found in crawled.tables:
                writer.apply(found)
            changes.unclassified.extend(crawled.unclassified)
            changes.targets.append(
                {
                    "target": target.describe(),
                    "tables": [f.location for f in crawled.tables],
                    "sampled": crawled.sampled,
                }
            )
            done.append(crawled)
        if spec.recrawl_policy == "everything":
            writer.remove_missing(done)

    def _masked(self, spec: CrawlerSpec, text: str) -> str:
        """``text`` without the secrets of the crawler's connections (as test-connection does)."""
        from stream_etl.control.connections import Connections, mask_text

        secrets: list[str] = []
        for name in spec.connections:
            try:
                secrets += Connections._secrets_of(self._resolve_name(name))
            except Exception:  # noqa: S112 - a connection that cannot be read has no secret to hide here
                continue
        return mask_text(text, secrets)

    def _resolve_name(self, name: str) -> Any:
        from stream_etl.control.connections import Connections

        return Connections(self.store, self.box).resolve(name)

    def _resolve(self, target: Target) -> Any:
        return None if target.connection is None else self._resolve_name(target.connection)

    def _environment(self, target: Target) -> dict[str, str]:
        if target.connection is None:
            return {}
        from stream_etl.control.connections import Connections

        return Connections(self.store, self.box).environment([target.connection])

    def runs(self, name: str | None = None, limit: int = 50) -> list[CrawlerRunInfo]:
        """Newest first."""
        with self.store.session() as session:
            query = select(CrawlerRun).order_by(CrawlerRun.id.desc()).limit(limit)
            if name is not None:
                query = query.where(CrawlerRun.crawler_id == self._row(session, name).id)
            return [_run_info(r) for r in session.scalars(query)]

    def last_run(self, name: str) -> CrawlerRunInfo | None:
        found = self.runs(name, limit=1)
        return found[0] if found else None

    def get_run(self, run_id: int) -> CrawlerRunInfo:
        with self.store.session() as session:
            return _run_info(by_id(session, CrawlerRun, run_id, kind="crawler run"))

    # lookups ----------------------------------------------------------------------------------

    def _info(self, row: Crawler) -> CrawlerInfo:
        last = max(row.runs, key=lambda r: r.id, default=None)
        return CrawlerInfo(
            **_spec(row).model_dump(),
            created_at=row.created_at,
            updated_at=row.updated_at,
            last_run=_run_info(last) if last is not None else None,
        )

    @staticmethod
    def _row(session: Session, name: str) -> Crawler:
        return by_name(session, Crawler, name, kind="crawler")
