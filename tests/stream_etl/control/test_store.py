from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from stream_etl.control.store import MIGRATIONS, Store, normalize_url
from stream_etl.errors import ConfigurationError


def _heads() -> set[str]:
    """The migrations' heads: feature revisions branch from 0001, so there may be several."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return set(ScriptDirectory.from_config(config).get_heads())


def test_open_applies_the_migrations(store: Store) -> None:
    tables = set(inspect(store.engine).get_table_names())
    assert {"catalog_databases", "catalog_tables", "connections", "jobs", "runs", "api_tokens"} <= tables
    with store.engine.connect() as connection:
        assert set(connection.execute(text("SELECT version_num FROM alembic_version")).scalars()) == _heads()


def test_opening_twice_is_idempotent(store_url: str) -> None:
    with Store.open(store_url), Store.open(store_url) as second:
        with second.engine.connect() as connection:
            assert connection.execute(text("SELECT count(*) FROM alembic_version")).scalar() == len(_heads())


def test_a_bare_path_is_a_sqlite_file(tmp_path: Path) -> None:
    url = normalize_url(str(tmp_path / "nested" / "c.db"))
    assert url.startswith("sqlite:///")
    with Store.open(url):
        assert (tmp_path / "nested" / "c.db").exists()
    assert normalize_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"


def test_an_unsupported_backend_says_what_to_use() -> None:
    with pytest.raises(ConfigurationError, match="SQLite or PostgreSQL"):
        Store.open("mysql://u@h/db")


def test_processes_opening_a_fresh_store_at_once_all_succeed(store_url: str, tmp_path: Path) -> None:
    import subprocess
    import sys
    import uuid

    import psycopg

    from tests.stream_etl.control.conftest import POSTGRES

    fresh = store_url
    if store_url.startswith("postgresql"):  # the session's database is migrated already: use a new one
        name = f"control_fresh_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(POSTGRES, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        fresh = f"{POSTGRES.rsplit('/', 1)[0]}/{name}"
    try:
        code = "import sys; from stream_etl.control.store import Store; Store.open(sys.argv[1]).close()"
        processes = [subprocess.Popen([sys.executable, "-c", code, fresh]) for _ in range(3)]
        assert [p.wait(timeout=120) for p in processes] == [0, 0, 0]
        with Store.open(fresh) as opened, opened.engine.connect() as connection:
            assert set(connection.execute(text("SELECT version_num FROM alembic_version")).scalars()) == _heads()
    finally:
        if fresh != store_url:
            with psycopg.connect(POSTGRES, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
