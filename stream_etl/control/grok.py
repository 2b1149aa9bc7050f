"""Grok patterns (Logstash's named regular expressions) translated to Python regexes.

``%{PATTERN:field}`` captures ``field`` with ``PATTERN``; ``%{PATTERN:field:type}`` gives its
type (``int``, ``long``, ``float``, ``double``, ``boolean``, ``string``, ``timestamp``);
``%{PATTERN}`` matches without capturing. Patterns may use other patterns. A small built-in
set covers logs; custom ones come as ``NAME regex`` lines (AWS Glue's ``CustomPatterns``)::

    grok = Grok("%{IP:client} %{WORD:method} %{URIPATH:path} %{INT:status}")
    grok.match("10.0.0.1 GET /index.html 200")  # {'client': '10.0.0.1', ..., 'status': '200'}
    grok.schema()                                 # client: string, ..., status: int64
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import pyarrow as pa

from stream_etl.errors import ConfigurationError

BUILTIN_PATTERNS: dict[str, str] = {
    "INT": r"(?:[+-]?(?:[0-9]+))",
    "POSINT": r"\b(?:[1-9][0-9]*)\b",
    "NONNEGINT": r"\b(?:[0-9]+)\b",
    "BASE10NUM": r"(?:[+-]?(?:[0-9]+(?:\.[0-9]+)?|\.[0-9]+))",
    "NUMBER": r"%{BASE10NUM}",
    "WORD": r"\b\w+\b",
    "NOTSPACE": r"\S+",
    "SPACE": r"\s*",
    "DATA": r".*?",
    "GREEDYDATA": r".*",
    "QUOTEDSTRING": r'"(?:[^"\\]|\\.)*"',
    "UUID": r"[A-Fa-f0-9]{8}-(?:[A-Fa-f0-9]{4}-){3}[A-Fa-f0-9]{12}",
    "USERNAME": r"[a-zA-Z0-9._-]+",
    "USER": r"%{USERNAME}",
    "IPV4": r"(?<![0-9])(?:(?:25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])(?![0-9])",
    "IPV6": r"(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}",
    "IP": r"(?:%{IPV6}|%{IPV4})",
    "HOSTNAME": r"\b(?:[0-9A-Za-z][0-9A-Za-z-]{0,62})(?:\.(?:[0-9A-Za-z][0-9A-Za-z-]{0,62}))*\.?\b",
    "IPORHOST": r"(?:%{IP}|%{HOSTNAME})",
    "URIPATH": r"(?:/[A-Za-z0-9$.+!*'(){},~:;=@#%&_\-]*)+",
    "TIMESTAMP_ISO8601": r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?",
    "LOGLEVEL": r"(?:[Tt]race|TRACE|[Dd]ebug|DEBUG|[Ii]nfo|INFO|[Nn]otice|NOTICE|[Ww]arn(?:ing)?|WARN(?:ING)?|"
    r"[Ee]rr(?:or)?|ERR(?:OR)?|[Cc]rit(?:ical)?|CRIT(?:ICAL)?|[Ff]atal|FATAL|[Ss]evere|SEVERE)",
}

#: A capture's type when the pattern names none.
_DEFAULT_TYPES = {"INT": "long", "POSINT": "long", "NONNEGINT": "long", "BASE10NUM": "double", "NUMBER": "double"}
_TYPES: dict[str, pa.DataType] = {
    "int": pa.int32(),
    "long": pa.int64(),
    "float": pa.float32(),
    "double": pa.float64(),
    "boolean": pa.bool_(),
    "string": pa.string(),
    "timestamp": pa.timestamp("us"),
}
_REFERENCE = re.compile(r"%\{(\w+)(?::([\w.@-]+))?(?::(\w+))?\}")
_MAX_DEPTH = 20


def parse_custom_patterns(text: str | Mapping[str, str] | None) -> dict[str, str]:
    """``NAME regex`` lines (blank lines and ``#`` comments skipped), or a mapping already."""
    if text is None:
        return {}
    if isinstance(text, Mapping):
        return dict(text)
    patterns = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, _, regex = line.partition(" ")
        if not regex.strip():
            msg = f"custom grok pattern line {line!r} is not 'NAME regex'"
            raise ConfigurationError(msg)
        patterns[name] = regex.strip()
    return patterns


class Grok:
    """A compiled grok pattern: the captured fields, their Arrow types and a full-match regex."""

    def __init__(self, pattern: str, custom_patterns: str | Mapping[str, str] | None = None) -> None:
        self.pattern = pattern
        self.patterns = {**BUILTIN_PATTERNS, **parse_custom_patterns(custom_patterns)}
        self.fields: dict[str, pa.DataType] = {}
        self._groups: dict[str, str] = {}  # regex group name -> field name (fields may hold '.', '-')
        source = self._expand(pattern, depth=0, capture=True)
        try:
            self.regex = re.compile(source)
        except re.error as exc:
            msg = f"grok pattern {pattern!r} is not a valid regex once expanded: {exc}"
            raise ConfigurationError(msg) from exc

    def _expand(self, text: str, *, depth: int, capture: bool) -> str:
        if depth > _MAX_DEPTH:
            msg = f"grok pattern {self.pattern!r} nests patterns more than {_MAX_DEPTH} deep (a cycle?)"
            raise ConfigurationError(msg)

        def replace(match: re.Match[str]) -> str:
            name, field, type_name = match[1], match[2], match[3]
            if name not in self.patterns:
                msg = f"grok pattern %{{{name}}} is not defined: add it to the custom patterns as '{name} regex'"
                raise ConfigurationError(msg)
            inner = self._expand(self.patterns[name], depth=depth + 1, capture=False)
            if not (capture and field):
                return f"(?:{inner})"
            kind = type_name or _DEFAULT_TYPES.get(name, "string")
            if kind not in _TYPES:
                msg = f"grok type {kind!r} of field {field!r} is not known: use one of {', '.join(_TYPES)}"
                raise ConfigurationError(msg)
            group = f"g{len(self._groups)}"
            self._groups[group] = field
            self.fields[field] = _TYPES[kind]
            return f"(?P<{group}>{inner})"

        return _REFERENCE.sub(replace, text)

    def match(self, line: str) -> dict[str, str] | None:
        """The captured values of ``line`` when the whole line matches, else None."""
        found = self.regex.fullmatch(line)
        if found is None:
            return None
        return {self._groups[g]: v for g, v in found.groupdict().items()}

    def schema(self) -> pa.Schema:
        return pa.schema([pa.field(name, type_) for name, type_ in self.fields.items()])
