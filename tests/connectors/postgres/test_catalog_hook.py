"""The Postgres sink registers its table in the catalog on creation, records a schema version
when columns are added, never stores the connection's password, and never fails on the catalog."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from connectors.postgres import PostgresSink
from tests.connectors.catalog_hook import BrokenCatalog, CountingCatalog, every_stored_value, hook, registered, run

PASSWORD = "pw-never-in-the-catalog"  # trust auth on the machine's Postgres: accepted, not checked


@pytest.fixture
def secret_dsn(dsn: str) -> str:
    return dsn.replace("postgres@", f"postgres:{PASSWORD}@")


def test_the_sink_registers_its_table_and_schema_changes_without_secrets(
    secret_dsn: str, pg_table: str, tmp_path: Path, unique: str
) -> None:
    catalog = hook(tmp_path)
    location = f"postgres://127.0.0.1:5432/test/public.{pg_table}"
    first = [{"id": i, "name": f"n{i}"} for i in range(4)]
    run(first, PostgresSink(pg_table, dsn=secret_dsn, mode="upsert", key=["id"]), unique, catalog)
    table, versions, _ = registered(tmp_path, location)
    assert (table.database, table.name, table.format) == ("lake", f"public.{pg_table}", "postgres")
    assert [(f.name, str(f.type)) for f in table.arrow_schema()] == [("id", "int64"), ("name", "string")]
    assert len(versions) == 1

    evolved = first + [{"id": 10, "name": "x", "score": 1.5}]
    run(evolved, PostgresSink(pg_table, dsn=secret_dsn, mode="upsert", key=["id"]), unique, catalog)
    catalog.close()
    table, versions, _ = registered(tmp_path, location)
    assert table.schema_version == 2
    assert table.arrow_schema().field("score").type.equals("double")
    stored = every_stored_value(tmp_path)
    assert f"public.{pg_table}" in stored
    assert PASSWORD not in stored


def test_the_sink_tells_the_catalog_only_on_creation_and_schema_change(dsn: str, pg_table: str, unique: str) -> None:
    counting = CountingCatalog()
    records = [{"id": i} for i in range(6)]  # 3 commits of 2 rows
    run(records, PostgresSink(pg_table, dsn=dsn), unique, counting)
    run(records + [{"id": 7, "extra": "e"}], PostgresSink(pg_table, dsn=dsn), unique, counting)
    assert [(c.created, c.schema.names) for c in counting.commits] == [(True, ["id"]), (False, ["id", "extra"])]


def test_a_failing_catalog_never_fails_the_run(dsn: str, pg_table: str, unique: str) -> None:
    run([{"id": 1}], PostgresSink(pg_table, dsn=dsn), unique, BrokenCatalog())
    with psycopg.connect(dsn) as conn:
        assert conn.execute(f'SELECT count(*) FROM "{pg_table}"').fetchone() == (1,)  # noqa: S608
