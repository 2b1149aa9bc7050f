"""A SQL statement over the batch, run by DuckDB reading the Arrow table without copying.

The batch is the table ``batch``. Lineage is carried automatically when the statement
makes at most one row per record (no GROUP BY, aggregate or DISTINCT): the lineage
column is added to the select list, so each output row keeps the record it comes from;
``SELECT *`` already has it. A statement that merges rows must say which record each
output row belongs to, by selecting ``__stream_etl_row`` itself
(``min(__stream_etl_row) AS __stream_etl_row``). A statement whose rows depend on other
rows (merging, window functions, LIMIT) is not row-local: a batch it fails on fails
the job instead of being bisected.

A row-local statement that fails on a batch (a CAST of a bad value) is retried on
halves of it; the failing rows are dead-lettered with the step's name. An unknown
column or table is a configuration error.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from stream_etl.errors import ConfigurationError
from stream_etl.records import LINEAGE
from stream_etl.transforms.base import Step

if TYPE_CHECKING:
    import duckdb  # imported where a statement is parsed or run: not loaded by topologies without one

_lock = threading.Lock()
_parser: list[duckdb.DuckDBPyConnection] = []


def _serialize(sql: str) -> dict[str, Any]:
    import duckdb

    with _lock:
        if not _parser:
            _parser.append(duckdb.connect())
        raw = _parser[0].execute("SELECT json_serialize_sql(?)", [sql]).fetchone()
    tree: dict[str, Any] = json.loads(raw[0]) if raw else {"error": True}
    if tree.get("error"):
        msg = f"invalid SQL statement {sql!r}: {tree.get('error_message', 'only one SELECT statement is allowed')}"
        raise ConfigurationError(msg)
    if len(tree["statements"]) != 1:
        msg = f"the sql step takes one SELECT statement, got {len(tree['statements'])}: {sql!r}"
        raise ConfigurationError(msg)
    return tree


def _deserialize(tree: dict[str, Any]) -> str:
    with _lock:
        raw = _parser[0].execute("SELECT json_deserialize_sql(?)", [json.dumps(tree)]).fetchone()
    assert raw is not None  # noqa: S101 - DuckDB always answers one row
    return str(raw[0])


def _contains(node: Any, found: Callable[[dict[str, Any]], bool]) -> bool:
    """Whether any expression in the tree matches ``found`` (window expressions are not descended)."""
    if isinstance(node, dict):
        if found(node):
            return True
        if node.get("class") == "WINDOW":
            return False
        return any(_contains(v, found) for v in node.values())
    if isinstance(node, list):
        return any(_contains(v, found) for v in node)
    return False


def _is_aggregate(node: dict[str, Any]) -> bool:
    return node.get("class") == "AGGREGATE" or (
        node.get("class") == "FUNCTION" and str(node.get("function_name", "")).lower() in _AGGREGATES
    )


def _is_window(node: dict[str, Any]) -> bool:
    return node.get("class") == "WINDOW"


#: Functions that combine rows (DuckDB's parser does not tell aggregates from scalars).
_AGGREGATES = {
    "count", "sum", "min", "max", "avg", "mean", "first", "last", "any_value", "arg_min", "arg_max",
    "list", "array_agg", "string_agg", "group_concat", "median", "mode", "stddev", "variance",
    "bool_and", "bool_or", "count_star", "approx_count_distinct", "quantile", "histogram",
}  # fmt: skip


def _selects_lineage(select_list: list[dict[str, Any]]) -> bool:
    for item in select_list:
        if item.get("class") == "STAR":
            return True
        if item.get("alias") == LINEAGE:
            return True
        if item.get("class") == "COLUMN_REF" and item["column_names"][-1] == LINEAGE and not item.get("alias"):
            return True
    return False


def _plan(sql: str) -> tuple[str, bool]:
    """The statement to run (with the lineage column added when it can be) and whether it is row-local."""
    tree = _serialize(sql)
    node = tree["statements"][0]["node"]
    if node.get("type") != "SELECT_NODE":
        msg = f"the sql step takes a plain SELECT over `batch` (no UNION, VALUES or other statements): {sql!r}"
        raise ConfigurationError(msg)
    modifiers = {m.get("type") for m in node.get("modifiers", [])}
    # Rows merged into groups: which record an output row belongs to must be said.
    combines = (
        bool(node.get("group_expressions"))
        or node.get("having") is not None
        or "DISTINCT_MODIFIER" in modifiers
        or _contains(node["select_list"], _is_aggregate)
    )
    # One output row per record, but each depends on other rows: halves give other results.
    looks_around = (
        "LIMIT_MODIFIER" in modifiers
        or "LIMIT_PERCENT_MODIFIER" in modifiers
        or _contains(node["select_list"], _is_window)
        or node.get("qualify") is not None
    )
    if _selects_lineage(node["select_list"]):
        return sql, not (combines or looks_around)
    if combines:
        msg = (
            f"sql {sql!r} combines rows, so it must say which record each output row belongs to: "
            f"select `min({LINEAGE}) AS {LINEAGE}` (or another record of the group)"
        )
        raise ConfigurationError(msg)
    node["select_list"].append({"class": "COLUMN_REF", "type": "COLUMN_REF", "alias": "", "column_names": [LINEAGE]})
    return _deserialize(tree), not looks_around


class Sql(Step):
    """Run a SELECT statement over the batch (the table ``batch``); see the module docstring."""

    kind = "sql"

    def __init__(self, statement: str) -> None:
        super().__init__()
        if not isinstance(statement, str) or not statement.strip():
            msg = "the sql step needs a SELECT statement over the table `batch`"
            raise ConfigurationError(msg)
        self.statement = statement
        self.query, local = _plan(statement)
        self._local = threading.local()
        #: False for a statement whose output rows depend on other rows of the batch
        #: (GROUP BY, aggregates, DISTINCT, windows, LIMIT): it cannot be bisected.
        self.combines_rows = not local

    def apply(self, table: pa.Table) -> pa.Table:
        import duckdb

        connection: duckdb.DuckDBPyConnection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = duckdb.connect()
            self._local.connection = connection
        connection.register("batch", table)
        try:
            relation = connection.sql(self.query)
            result = relation.to_arrow_table() if hasattr(relation, "to_arrow_table") else relation.arrow()
        except (duckdb.BinderException, duckdb.CatalogException, duckdb.ParserException) as exc:
            msg = f"{self.statement!r} does not fit the batch: {exc}"
            raise self.mismatch(msg) from exc
        finally:
            connection.unregister("batch")
        if result.column_names.count(LINEAGE) != 1:
            msg = f"sql step {self.name!r} must return the lineage column {LINEAGE!r} exactly once"
            raise ConfigurationError(msg)
        lineage = result[LINEAGE]
        if not lineage.type.equals(pa.int32()):
            result = result.set_column(result.schema.get_field_index(LINEAGE), LINEAGE, lineage.cast(pa.int32()))
        return result

    def describe(self) -> str:
        return f"sql {self.statement}"


class SqlAggregate(Sql):
    """A SQL statement that combines rows: not bisected (a failing batch fails the job)."""

    kind = "sql"
    row_local = False
