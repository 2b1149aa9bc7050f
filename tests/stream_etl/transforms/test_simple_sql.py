"""The plain-SQL parser against DuckDB's own: where it answers, its tree is a part of DuckDB's."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_etl.transforms.simple_sql import KEYWORDS, parse

_CONNECTION = duckdb.connect()


def duckdb_tree(sql: str) -> dict[str, Any] | None:
    raw = _CONNECTION.execute("SELECT json_serialize_sql(?)", [f"SELECT {sql}"]).fetchone()
    tree = json.loads(raw[0]) if raw else {"error": True}
    if tree.get("error"):
        return None
    node = tree["statements"][0]["node"]
    if node.get("from_table", {}).get("type") not in (None, "EMPTY") or len(node["select_list"]) != 1:
        return None
    return node["select_list"][0]  # type: ignore[no-any-return]


def assert_part_of(ours: Any, theirs: Any, path: str = "") -> None:
    """Every key of ``ours`` has DuckDB's value (lists element by element, same length)."""
    if isinstance(ours, dict):
        assert isinstance(theirs, dict), path
        for key, value in ours.items():
            assert key in theirs, f"{path}.{key}"
            assert_part_of(value, theirs[key], f"{path}.{key}")
    elif isinstance(ours, list):
        assert isinstance(theirs, list), path
        assert len(ours) == len(theirs), path
        for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
            assert_part_of(a, b, f"{path}[{i}]")
    else:
        assert ours == theirs, f"{path}: {ours!r} != {theirs!r}"


def check(sql: str) -> bool:
    """True when the simple parser answered (and agreed with DuckDB)."""
    ours = parse(sql)
    if ours is None:
        return False
    theirs = duckdb_tree(sql)
    assert theirs is not None, f"DuckDB refuses {sql!r}, the simple parser did not"
    assert_part_of(ours, theirs)
    return True


PARSED = [
    "amount >= 0",
    "CAST(round(amount * 100) AS BIGINT)",
    "a.b IS NOT NULL AND NOT x",
    "x IN (1, 2)",
    "x NOT IN (1, 'a', 2.5)",
    "NOT x IN (1)",
    "country = 'DE' OR country = 'FR' AND amount > 10.5",
    "(a AND b) AND c",
    "a OR (b OR c) OR d",
    "x IS NOT NULL IS NULL",
    "a = b IS NULL",
    "NOT a = b",
    "NOT NOT x",
    "1+2*3",
    "(1 + 2) * 3 / x - y",
    "coalesce(a, b, 0)",
    "COALESCE(a, 1) <> 2",
    "lower(name) = 'x'",
    "ROUND(x, 2)",
    "trim(s) != ''",
    "concat(a, b)",
    "abs(x) < 1",
    "floor(x) + ceil(y)",
    "length(upper(s)) >= 3",
    "'it''s' = s",
    "true",
    "FALSE OR x",
    "Amount",
    '"Amount" = 1',
    '"a b".c',
    "x = 9223372036854775808",
    "x = 10000000000000000000000000000000000000000",
    "x < 1.123456789012345678901234567890123456789",
    "00012 = x",
    "name = value AND key = type",
    "user IS NULL",
    "CAST(x AS int) + CAST(y AS integer) + CAST(z AS smallint)",
    "CAST(x AS text) = CAST(y AS varchar)",
    "CAST(x AS double) > CAST(y AS tinyint)",
    "CAST(b AS boolean) AND CAST(c AS bool)",
    "CAST(d AS date) = CAST(t AS timestamptz)",
    "x\n AND\ty",
]

NOT_PARSED = [
    "-1",
    "a - -1",
    "a || b",
    "x BETWEEN 1 AND 2",
    "x LIKE 'a%'",
    "1.5e3",
    ".5",
    "1.",
    "x -- comment",
    "x /* c */",
    "a = b = c",
    "CAST(x AS DECIMAL(10, 2))",
    "CAST(x AS timestamp)",
    "TRY_CAST(x AS int)",
    "date '2020-01-01'",
    "interval 1 day",
    "x::int",
    "CASE WHEN x THEN 1 END",
    "f(x)",
    "trim(both 'x' from y)",
    "'a\\b'",
    "x IN (SELECT 1)",
    "a, b",
    "",
    "x = ",
    "(x",
    "select",
    "E'x'",
]


@pytest.mark.parametrize("sql", PARSED)
def test_parsed_as_duckdb_does(sql: str) -> None:
    assert check(sql)


@pytest.mark.parametrize("sql", NOT_PARSED)
def test_left_to_duckdb(sql: str) -> None:
    assert parse(sql) is None


def test_keywords_are_duckdbs() -> None:
    rows = _CONNECTION.execute(
        "SELECT keyword_name FROM duckdb_keywords() WHERE keyword_category <> 'unreserved'"
    ).fetchall()
    assert {name for (name,) in rows} <= KEYWORDS


_WORDS = [
    "a", "b", "x", "Amount", '"q"', '"Q r"', "name", "value", "type", "key", "user", "date", "year", "day",
    "current_date", "current_user", "session_user", "current_timestamp", "localtime", "at", "zone", "default",
    "and", "or", "not", "is", "null", "in", "true", "false", "cast", "as", "bigint", "int", "text", "round",
    "lower", "coalesce", "trim", "abs", "concat", "between", "like", "case", "when", "then", "end", "nullif",
]  # fmt: skip
_SYMBOLS = [
    "(",
    ")",
    ",",
    ".",
    "=",
    "<>",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "+",
    "-",
    "*",
    "/",
    "0",
    "12",
    "2.5",
    "'s'",
    "''''",
]


@settings(max_examples=600, deadline=None)
@given(st.lists(st.sampled_from(_WORDS + _SYMBOLS), min_size=1, max_size=12))
def test_random_token_strings(tokens: list[str]) -> None:
    check(" ".join(tokens))


_atom = st.sampled_from(["a", "b.c", '"X"', "name", "user", "0", "7", "2.5", "'s'", "true", "false"])


def _combine(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    binary = st.tuples(children, st.sampled_from(["AND", "OR", "=", "<>", "<", ">=", "+", "-", "*", "/"]), children)
    return st.one_of(
        binary.map(lambda t: f"{t[0]} {t[1]} {t[2]}"),
        children.map(lambda c: f"({c})"),
        children.map(lambda c: f"NOT {c}"),
        children.map(lambda c: f"{c} IS NOT NULL"),
        children.map(lambda c: f"{c} IN (1, 'x')"),
        children.map(lambda c: f"CAST({c} AS bigint)"),
        st.tuples(children, children).map(lambda t: f"coalesce({t[0]}, {t[1]})"),
        children.map(lambda c: f"round({c})"),
    )


@settings(max_examples=600, deadline=None)
@given(st.recursive(_atom, _combine, max_leaves=8))
def test_random_expressions(sql: str) -> None:
    check(sql)


def test_a_plain_topology_never_loads_duckdb() -> None:
    code = (
        "import sys; from stream_etl.transforms.expressions import Expression; "
        "e = Expression('CAST(round(amount * 100) AS BIGINT)'); assert e.compiled; "
        "assert 'duckdb' not in sys.modules, 'duckdb was imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
