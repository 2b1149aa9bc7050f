"""The metadata store: SQLAlchemy 2 over a SQLite file (default) or Postgres.

``Store.open(url)`` connects and applies the Alembic migrations in ``migrations/``
up to their heads (features add revisions that branch from 0001), so every process (CLI, API, supervisor, worker hook) sees one schema.
SQLite runs in WAL mode with a busy timeout so a supervisor, an API server and
workers on one machine can share the file; deployments across machines use
Postgres (``postgresql+psycopg://user@host/db``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, event, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from stream_etl.control.errors import AlreadyExists, NotFound
from stream_etl.errors import ConfigurationError

log = logging.getLogger(__name__)
# Alembic logs ~10 INFO lines per open (plugins, "Context impl ...") in every process: keep them out of
# worker and CLI logs.
logging.getLogger("alembic").setLevel(logging.WARNING)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
DEFAULT_PATH = Path("~/.stream-etl/control.db")
_migrate_lock = threading.Lock()
_Row = TypeVar("_Row")


def by_name(session: Session, model: type[_Row], name: str, *, kind: str) -> _Row:
    """The row of ``model`` named ``name``, else :class:`NotFound` naming it as a ``kind``."""
    row = session.scalars(select(model).where(model.name == name)).first()  # type: ignore[attr-defined]
    if row is None:
        raise NotFound(kind=kind, name=name)
    return row


def named_row(session: Session, model: type[_Row], name: str, *, replace: bool) -> _Row:
    """With ``replace``, the row of ``model`` named ``name`` if there is one; else a new one, added."""
    row = session.scalars(select(model).where(model.name == name)).first() if replace else None  # type: ignore[attr-defined]
    if row is None:
        row = model(name=name)  # type: ignore[call-arg]
        session.add(row)
    return row


def by_id(session: Session, model: type[_Row], row_id: int, *, kind: str) -> _Row:
    """The row of ``model`` with id ``row_id``, else :class:`NotFound` naming it as a ``kind``."""
    row = session.get(model, row_id)
    if row is None:
        raise NotFound(kind=kind, name=row_id)
    return row


def default_url() -> str:
    return f"sqlite:///{DEFAULT_PATH.expanduser()}"


def normalize_url(url: str) -> str:
    """Accept ``postgresql://`` and ``postgres://`` as psycopg 3 URLs; a bare path as a SQLite file."""
    if url.startswith(("postgres://", "postgresql://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    if "://" not in url:
        return f"sqlite:///{Path(url).expanduser().resolve()}"
    return url


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


class Store:
    """A connection pool to the metadata database and a session factory."""

    def __init__(self, engine: Engine) -> None:
        # Every ORM class registered before the first query configures the mappers: a model
        # module imported later by another thread (a crawl in the scheduler's pool) could be
        # half-defined when a query configures them, which fails for good in that process.
        from stream_etl.control import crawler_models, models, registry_models, trigger_models  # noqa: F401

        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @classmethod
    def open(cls, url: str | None = None, *, migrate: bool = True) -> Store:
        url = normalize_url(url or default_url())
        try:
            parsed = make_url(url)
        except ArgumentError as exc:
            msg = f"metadata store URL {url!r} is not valid: use sqlite:///path/control.db or postgresql://user@host/db"
            raise ConfigurationError(msg) from exc
        if parsed.get_backend_name() == "sqlite":
            database = parsed.database
            if database and database != ":memory:":
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
            event.listen(engine, "connect", _sqlite_pragmas)
        elif parsed.get_backend_name() == "postgresql":
            engine = create_engine(url, pool_pre_ping=True)
        else:
            msg = f"metadata store {parsed.get_backend_name()!r} is not supported: use SQLite or PostgreSQL"
            raise ConfigurationError(msg)
        store = cls(engine)
        if migrate:
            store.migrate()
        return store

    def migrate(self) -> None:
        """Apply every migration not applied yet (idempotent)."""
        from alembic import command  # imported after the log level below is set: it logs on import
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        with _migrate_lock, self._file_lock(), self.engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                # Processes opening a fresh database at once (a supervisor and its workers) migrate one
                # at a time; the lock ends with the transaction. SQLite serializes writers itself.
                connection.execute(text("SELECT pg_advisory_xact_lock(5377001)"))
            config.attributes["connection"] = connection
            command.upgrade(config, "heads")

    @contextmanager
    def _file_lock(self) -> Iterator[None]:
        """SQLite: processes opening a fresh file at once (a supervisor and its workers) migrate one at
        a time. pysqlite starts no transaction for DDL, so the database cannot serialize them itself."""
        database = self.engine.url.database if self.engine.dialect.name == "sqlite" else None
        if not database or database == ":memory:":
            yield
            return
        import fcntl

        with open(f"{database}.migrate-lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction: committed when the block ends, rolled back on an error."""
        with self._sessions.begin() as session:
            yield session

    @contextmanager
    def creating(self, kind: str, name: object) -> Iterator[Session]:
        """A :meth:`session` that adds a row unique on ``name``: a duplicate raises :class:`AlreadyExists`."""
        try:
            with self.session() as session:
                yield session
        except IntegrityError as exc:
            raise AlreadyExists(kind=kind, name=name) from exc

    @property
    def url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
