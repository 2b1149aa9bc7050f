"""Bulk loading from Arrow: CSV for ``COPY ... FROM STDIN``, and one row per upsert key.

No Python runs per row: Arrow's C++ CSV writer renders the batch, DuckDB renders nested
values as JSON text and binary as ``\\x`` hex, Arrow's ``group_by`` finds each key's last row.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from psycopg import Connection, sql

from connectors.postgres.config import is_binary, is_nested


def last_per_key(table: pa.Table, key: Sequence[str]) -> pa.Table:
    """The last row of every key, in their original order (an upsert applies each key once)."""
    index = pc.subtract(pc.cumulative_sum(pa.repeat(pa.scalar(1, pa.int64()), table.num_rows)), 1)
    grouped = table.select(list(key)).append_column("__row", index).group_by(list(key), use_threads=False)
    last = grouped.aggregate([("__row", "max")])["__row_max"]
    if len(last) == table.num_rows:
        return table
    return table.take(pc.take(last, pc.sort_indices(last)))


def copy_payload(table: pa.Table) -> bytes:
    """``table`` as CSV that ``COPY ... (FORMAT csv)`` reads: nested values as JSON text,
    binary as ``\\x`` hex, null as an unquoted empty field, strings always quoted."""
    special = [f.name for f in table.schema if is_nested(f.type) or is_binary(f.type)]
    dictionaries = [f.name for f in table.schema if pa.types.is_dictionary(f.type)]
    for name in dictionaries:
        table = table.set_column(
            table.column_names.index(name), name, pc.cast(table[name], table.schema.field(name).type.value_type)
        )
    if special:
        import duckdb

        def quoted(name: str) -> str:
            return '"' + name.replace('"', '""') + '"'

        selects = []
        for field in table.schema:
            if is_nested(field.type):
                selects.append(f"to_json({quoted(field.name)})::VARCHAR AS {quoted(field.name)}")
            elif is_binary(field.type):
                selects.append(f"'\\x' || hex({quoted(field.name)}) AS {quoted(field.name)}")
            else:
                selects.append(quoted(field.name))
        with duckdb.connect() as con:
            con.register("rows", table)
            table = con.sql(f"SELECT {', '.join(selects)} FROM rows").to_arrow_table()  # noqa: S608 - quoted names
    buffer = io.BytesIO()
    pacsv.write_csv(table, buffer, pacsv.WriteOptions(include_header=False, quoting_style="needed"))
    return buffer.getvalue()


def copy_rows(conn: Connection[Any], target: sql.Composable, names: sql.Composable, table: pa.Table) -> None:
    payload = copy_payload(table)
    with (
        conn.cursor() as cursor,
        cursor.copy(sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv)").format(target, names)) as copy,
    ):
        view = memoryview(payload)
        for start in range(0, len(view), 1 << 20):
            copy.write(view[start : start + (1 << 20)])
