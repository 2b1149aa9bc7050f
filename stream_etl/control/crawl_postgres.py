"""Crawl Postgres tables: columns and types from ``information_schema``, mapped to Arrow.

The target's path is ``schema.table`` where ``%`` matches any characters (``public.%``:
every table of ``public``; a bare ``orders`` means ``public.orders``). The connection is the
target's postgres connection, else ``STREAM_ETL_POSTGRES_DSN``, else libpq's ``PG*`` variables.
"""

from __future__ import annotations

import re
from typing import Any

import pyarrow as pa

from connectors.postgres.config import arrow_field
from stream_etl.control.crawl_streams import CrawlError
from stream_etl.control.crawl_targets import CrawlContext, Crawled, Found, Target, table_name

_COLUMNS = """
SELECT c.table_schema, c.table_name, c.column_name, c.data_type, c.is_nullable,
       c.numeric_precision, c.numeric_scale, c.udt_name
FROM information_schema.columns c
JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name
WHERE c.table_schema LIKE %s AND c.table_name LIKE %s AND t.table_type IN ('BASE TABLE', 'VIEW')
ORDER BY c.table_schema, c.table_name, c.ordinal_position
"""


def _connect_kwargs(context: CrawlContext) -> dict[str, Any]:
    if context.connection is not None:
        kwargs: dict[str, Any] = context.connection.connect_kwargs()
        return kwargs
    dsn = context.settings.postgres_dsn
    return {"conninfo": dsn.get_secret_value() if dsn is not None else ""}


def crawl_postgres(target: Target, context: CrawlContext) -> Crawled:
    import psycopg

    schema_pattern, _, table_pattern = target.path.rpartition(".")
    schema_pattern = schema_pattern or "public"
    kwargs = _connect_kwargs(context)
    try:
        with psycopg.connect(**kwargs, connect_timeout=max(1, int(context.timeout_s))) as conn:
            database = conn.info.dbname
            host, port = conn.info.host, conn.info.port
            rows = conn.execute(_COLUMNS, (schema_pattern, table_pattern)).fetchall()
    except psycopg.Error as exc:
        msg = f"cannot read Postgres tables {target.path!r}: {exc}".strip()
        raise CrawlError(msg) from exc
    tables: dict[tuple[str, str], list[pa.Field]] = {}
    for schema, table, *column in rows:
        tables.setdefault((schema, table), []).append(arrow_field(*column))
    like = re.escape(schema_pattern) + r"\." + re.escape(table_pattern)
    scope = re.compile(re.escape(f"postgres://{host}:{port}/{database}/") + like.replace("%", ".*").replace("_", "."))
    crawled = Crawled(sampled=len(tables), scope=scope)
    for (schema, table), fields in tables.items():
        crawled.tables.append(
            Found(
                name=table_name(table if schema == "public" else f"{schema}_{table}"),
                location=f"postgres://{host}:{port}/{database}/{schema}.{table}",
                format="postgres",
                classification="postgres",
                schema=pa.schema(fields),
                parameters={"type_of_data": "postgres", "schema": schema, "table": table},
            )
        )
    return crawled
