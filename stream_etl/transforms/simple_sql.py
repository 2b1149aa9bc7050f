"""A parser for the plainest SQL expressions, so that a topology using only those never loads DuckDB.

DuckDB (``import duckdb`` ~40 ms, a connection and the parse ~25 ms more, ~35 MB resident)
parses every SQL expression of a filter or derive step when the topology is built, i.e.
before a worker can subscribe. Most expressions are of a small, plain subset: columns
(``a``, ``a.b``, ``"A"``), integer, decimal, string and boolean literals, comparisons,
AND/OR/NOT, IS [NOT] NULL, [NOT] IN (...), ``+ - * /``, CAST to a plain type, COALESCE and
a few functions. :func:`parse` reads that subset and returns the parts of the tree DuckDB's
``json_serialize_sql`` would return that :mod:`stream_etl.transforms.expressions` reads; for
anything else (another keyword or function, a unary minus, ``||``, an exponent, a comment,
a syntax error) it returns None and the expression goes to DuckDB as before, so errors are
DuckDB's. tests/stream_etl/transforms/test_simple_sql.py checks every tree against DuckDB's.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

Node = dict[str, Any]

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<number>\d+(?:\.\d+)?(?![\w.]))
      | (?P<string>'(?:[^'\\]|'')*')
      | (?P<quoted>"[^"]+")
      | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
      | (?P<op>>=|<=|<>|!=|[=<>+*/(),.]|-(?!-))
    )""",
    re.VERBOSE,
)
_COMPARISONS = {
    "=": "COMPARE_EQUAL",
    "<>": "COMPARE_NOTEQUAL",
    "!=": "COMPARE_NOTEQUAL",
    "<": "COMPARE_LESSTHAN",
    "<=": "COMPARE_LESSTHANOREQUALTO",
    ">": "COMPARE_GREATERTHAN",
    ">=": "COMPARE_GREATERTHANOREQUALTO",
}
_FUNCTIONS = frozenset({"round", "lower", "upper", "length", "trim", "abs", "floor", "ceil", "concat"})
#: CAST targets, and the type name DuckDB puts in the tree (keywords normalized, others as written).
_TYPES = {
    "bigint": "BIGINT",
    "int": "INTEGER",
    "integer": "INTEGER",
    "smallint": "SMALLINT",
    "boolean": "BOOLEAN",
    "varchar": "VARCHAR",
    "double": None,
    "tinyint": None,
    "text": None,
    "bool": None,
    "date": None,
    "timestamptz": None,
}
#: DuckDB 2's keywords other than the unreserved ones (``duckdb_keywords()``): never a plain column.
KEYWORDS = frozenset(
    """all analyse analyze and anti any array as asc asof asymmetric at authorization between bigint binary
    bit boolean both by case cast char character check coalesce collate collation column columns
    concurrently constraint create cross dec decimal default deferrable desc describe distinct do else
    end except exists extract false fetch float for foreign freeze from full generated glob
    group grouping grouping_id having ilike in initially inner inout int integer intersect interval into
    is isnull join lambda lateral leading left like limit map national natural nchar none not
    notnull null nullif numeric offset on only or order out outer overlaps overlay pivot pivot_longer
    pivot_wider placing position positional precision primary qualify real references returning right
    row select semi setof show similar smallint some struct substring summarize symmetric table
    tablesample then time timestamp to trailing treat trim true try_cast tuple union
    unique unpack unpivot using values varchar variadic verbose when where window with xmlattributes
    xmlconcat xmlelement xmlexists xmlforest xmlnamespaces xmlparse xmlpi xmlroot xmlserialize xmltable""".split()
)


class _Unparsed(Exception):
    """Not in the subset: DuckDB parses it."""


def parse(sql: str) -> Node | None:
    """The expression's tree as DuckDB would give it (the keys the compiler reads), or None."""
    tokens = _tokens(sql)
    if tokens is None:
        return None
    parser = _Parser(tokens)
    try:
        node = parser.disjunction()
        if parser.peek() is not None:
            return None
    except _Unparsed:
        return None
    return node


def _tokens(sql: str) -> list[tuple[str, str]] | None:
    tokens, position, end = [], 0, len(sql.rstrip())
    while position < end:
        match = _TOKEN.match(sql, position)
        if match is None or match.end() == position:
            return None
        kind = str(match.lastgroup)
        tokens.append((kind, match.group(kind)))
        position = match.end()
    return tokens


def _column(names: list[str]) -> Node:
    return {"class": "COLUMN_REF", "type": "COLUMN_REF", "column_names": names}


def _constant(kind: str, text: str) -> Node:
    return {"class": "CONSTANT", "type": "VALUE_CONSTANT", "literal": {"kind": kind, "text": text}}


def _function(name: str, arguments: list[Node]) -> Node:
    return {
        "class": "FUNCTION",
        "type": "FUNCTION",
        "function_name": name,
        "arguments": [{"expression": a} for a in arguments],
    }


def _operator(type_: str, children: list[Node]) -> Node:
    return {"class": "OPERATOR", "type": type_, "children": children}


class _Parser:
    """Precedence as DuckDB's (PostgreSQL's): OR < AND < NOT < IS < comparison < IN < + - < * /."""

    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.tokens, self.at = tokens, 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def word(self) -> str | None:
        token = self.peek()
        return token[1].lower() if token is not None and token[0] == "word" else None

    def take(self, text: str) -> bool:
        token = self.peek()
        if (
            token is not None
            and (token[1] if token[0] == "op" else token[1].lower() if token[0] == "word" else None) == text
        ):
            self.at += 1
            return True
        return False

    def expect(self, text: str) -> None:
        if not self.take(text):
            raise _Unparsed

    def disjunction(self) -> Node:
        return self._conjunction("or", "CONJUNCTION_OR", self.conjunction)

    def conjunction(self) -> Node:
        return self._conjunction("and", "CONJUNCTION_AND", self.negation)

    def _conjunction(self, word: str, type_: str, operand: Callable[[], Node]) -> Node:
        children = [operand()]
        while self.take(word):
            children.append(operand())
        if len(children) == 1:
            return children[0]
        flat: list[Node] = []  # DuckDB flattens nested conjunctions of one kind, parenthesized or not
        for child in children:
            same = child.get("class") == "CONJUNCTION" and child.get("type") == type_
            flat.extend(child["children"] if same else [child])
        return {"class": "CONJUNCTION", "type": type_, "children": flat}

    def negation(self) -> Node:
        if self.take("not"):
            return _operator("OPERATOR_NOT", [self.negation()])
        return self.null_test()

    def null_test(self) -> Node:
        node = self.comparison()
        while self.take("is"):
            negated = self.take("not")
            self.expect("null")
            node = _operator("OPERATOR_IS_NOT_NULL" if negated else "OPERATOR_IS_NULL", [node])
        return node

    def comparison(self) -> Node:
        left = self.membership()
        token = self.peek()
        if token is None or token[0] != "op" or token[1] not in _COMPARISONS:
            return left
        self.at += 1
        right = self.membership()
        following = self.peek()
        if following is not None and following[0] == "op" and following[1] in _COMPARISONS:
            raise _Unparsed  # chained comparison: DuckDB's error
        return {"class": "COMPARISON", "type": _COMPARISONS[token[1]], "left": left, "right": right}

    def membership(self) -> Node:
        value = self.additive()
        negated = self.word() == "not" and self._next_is("in")
        if negated:
            self.at += 1
        if not self.take("in"):
            return value
        self.expect("(")
        options = self.arguments()
        found = _operator("COMPARE_IN", [value, *options])
        return _operator("OPERATOR_NOT", [found]) if negated else found

    def _next_is(self, word: str) -> bool:
        token = self.tokens[self.at + 1] if self.at + 1 < len(self.tokens) else None
        return token is not None and token[0] == "word" and token[1].lower() == word

    def additive(self) -> Node:
        node = self.multiplicative()
        while (op := self._op("+", "-")) is not None:
            node = _function(op, [node, self.multiplicative()])
        return node

    def multiplicative(self) -> Node:
        node = self.primary()
        while (op := self._op("*", "/")) is not None:
            node = _function(op, [node, self.primary()])
        return node

    def _op(self, *ops: str) -> str | None:
        token = self.peek()
        if token is not None and token[0] == "op" and token[1] in ops:
            self.at += 1
            return token[1]
        return None

    def arguments(self) -> list[Node]:
        """Comma-separated expressions up to the closing parenthesis (the opening one taken)."""
        found = [self.disjunction()]
        while self.take(","):
            found.append(self.disjunction())
        self.expect(")")
        return found

    def primary(self) -> Node:
        token = self.peek()
        if token is None:
            raise _Unparsed
        kind, text = token
        self.at += 1
        if kind == "number":
            return _constant("NUMERIC" if "." in text else "INTEGER", text)
        if kind == "string":
            return _constant("STRING", text[1:-1].replace("''", "'"))
        if kind == "op" and text == "(":
            node = self.disjunction()
            self.expect(")")
            return node
        if kind == "quoted":
            return self._column_path(text[1:-1])
        if kind != "word":
            raise _Unparsed
        word = text.lower()
        if word in ("true", "false"):
            return _constant("BOOLEAN", word)
        if word == "cast":
            return self._cast()
        if self.take("("):
            if word == "coalesce":
                return _operator("OPERATOR_COALESCE", self.arguments())
            if word not in _FUNCTIONS:
                raise _Unparsed
            return _function(word, self.arguments())
        if word in KEYWORDS:
            raise _Unparsed
        return self._column_path(text)

    def _column_path(self, first: str) -> Node:
        names = [first]
        while self.take("."):
            token = self.peek()
            if token is None or token[0] not in ("word", "quoted") or token[1].lower() in KEYWORDS:
                raise _Unparsed
            self.at += 1
            names.append(token[1][1:-1] if token[0] == "quoted" else token[1])
        return _column(names)

    def _cast(self) -> Node:
        self.expect("(")
        child = self.disjunction()
        self.expect("as")
        token = self.peek()
        name = token[1] if token is not None and token[0] == "word" else ""
        if name.lower() not in _TYPES:
            raise _Unparsed
        self.at += 1
        self.expect(")")
        type_name = _TYPES[name.lower()] or name
        return {
            "class": "CAST",
            "type": "OPERATOR_CAST",
            "child": child,
            "try_cast": False,
            "type_expr": {"type_name": type_name, "children": []},
        }
