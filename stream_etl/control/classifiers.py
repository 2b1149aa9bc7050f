"""Classifiers: what format sample records are in, how certain that is, and their schema.

AWS Glue's rules: custom classifiers are tried first, in the crawler's order; one that
answers with certainty 1.0 wins at once. Otherwise every built-in classifier runs and
the highest certainty wins (ties: the first). Nothing above 0.0 is ``UNKNOWN``.

Built-in (over records: Kafka values, Kinesis data, lines of a file):

- ``json``: the share of samples that are JSON objects; schema by :func:`infer_schema`.
- ``avro``: Confluent-framed records whose writer schemas a resolver finds (1.0), or Avro
  object container files (1.0).
- ``csv``: lines that split into the same number (>= 2) of fields on ``,``, ``|``, tab or
  ``;`` (0.8 with a header line, 0.7 without: columns are then ``col0``, ``col1``, ...).

Custom (:class:`CustomClassifier`): ``grok`` and ``regex`` (1.0 when every sample matches
the whole pattern), ``json_path`` (records at a path inside each JSON document), ``csv``
(explicit delimiter, quote, header and columns). Samples are bytes; Parquet and Delta are
recognised from files by :mod:`stream_etl.control.crawl_files`.
"""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
import pyarrow as pa
import pyarrow.csv as pa_csv
from pydantic import BaseModel

from stream_etl.control.grok import Grok
from stream_etl.errors import ConfigurationError
from stream_etl.formats.inference import infer_schema
from stream_etl.formats.registry import SchemaResolver

UNKNOWN = "UNKNOWN"
ClassifierKind = Literal["regex", "grok", "json_path", "csv"]
KINDS: tuple[str, ...] = ("regex", "grok", "json_path", "csv")
_CSV_DELIMITERS = (",", "|", "\t", ";")
_AVRO_CONTAINER = b"Obj\x01"


@dataclass(frozen=True, slots=True)
class Classified:
    """A classifier's answer: ``classification`` (the format to register), how certain, the schema."""

    classification: str
    certainty: float
    schema: pa.Schema
    classifier: str
    parameters: dict[str, Any] = field(default_factory=dict)


class ClassifierInfo(BaseModel):
    name: str
    kind: ClassifierKind
    settings: dict[str, Any]


def check_settings(kind: str, settings: dict[str, Any]) -> None:
    """Refuse settings a custom classifier of ``kind`` cannot use, saying what to give."""
    if kind not in KINDS:
        msg = f"classifier kind {kind!r} is not known: use one of {', '.join(KINDS)}"
        raise ConfigurationError(msg)
    needed = {"regex": "pattern", "grok": "pattern", "json_path": "json_path"}.get(kind)
    if needed and not settings.get(needed):
        msg = f"a {kind} classifier needs the setting {needed!r}"
        raise ConfigurationError(msg)
    CustomClassifier(ClassifierInfo(name="check", kind=kind, settings=settings))  # type: ignore[arg-type]


class CustomClassifier:
    def __init__(self, info: ClassifierInfo) -> None:
        self.info = info
        settings = info.settings
        self.classification = str(settings.get("classification") or info.name)
        self._classify: Callable[[list[bytes]], Classified | None]
        if info.kind == "grok":
            grok = Grok(settings["pattern"], settings.get("custom_patterns"))
            self._classify = lambda samples: self._lines(samples, grok.match, grok.schema())
        elif info.kind == "regex":
            try:
                regex = re.compile(settings["pattern"])
            except re.error as exc:
                msg = f"classifier {info.name}: the regex is not valid: {exc}"
                raise ConfigurationError(msg) from exc
            if not regex.groupindex:
                msg = f"classifier {info.name}: the regex names no groups; use (?P<column>...)"
                raise ConfigurationError(msg)
            columns = pa.schema([pa.field(n, pa.string()) for n in regex.groupindex])
            self._classify = lambda samples: self._lines(samples, regex.fullmatch, columns)
        elif info.kind == "json_path":
            path = _json_path(settings["json_path"])
            self._classify = lambda samples: self._json_path(samples, path)
        else:
            self._classify = self._csv

    def classify(self, samples: list[bytes]) -> Classified | None:
        return self._classify(samples)

    def _lines(self, samples: list[bytes], match: Callable[[str], Any], schema: pa.Schema) -> Classified | None:
        lines = _text_lines(samples)
        if not lines:
            return None
        matched = sum(match(line) is not None for line in lines)
        return self._answer(matched / len(lines), schema)

    def _json_path(self, samples: list[bytes], path: list[str | int | None]) -> Classified | None:
        found: list[dict[str, Any]] = []
        for sample in samples:
            try:
                document = orjson.loads(sample)
            except orjson.JSONDecodeError:
                return None
            found.extend(o for o in _select(document, path) if isinstance(o, dict))
        if not found:
            return None
        return self._answer(1.0, infer_schema(found, format="json"))

    def _csv(self, samples: list[bytes]) -> Classified | None:
        s = self.info.settings
        header = s.get("header", "detect")
        schema = csv_schema(
            _text_lines(samples),
            delimiter=s.get("delimiter", ","),
            quote_char=s.get("quote_char", '"'),
            header=header,
            columns=s.get("columns"),
        )
        return None if schema is None else self._answer(1.0, schema[0])

    def _answer(self, certainty: float, schema: pa.Schema) -> Classified:
        return Classified(self.classification, certainty, schema, self.info.name, {"classifier": self.info.name})


def classify(
    samples: Sequence[bytes | None],
    *,
    custom: Sequence[CustomClassifier] = (),
    resolver: SchemaResolver | None = None,
) -> Classified | None:
    """The winning classification of ``samples`` (Glue's rules, see the module doc), or None (UNKNOWN)."""
    values = [s for s in samples if s]
    if not values:
        return None
    best: Classified | None = None
    for classifier in custom:
        answer = classifier.classify(values)
        if answer is not None and answer.certainty >= 1.0:
            return answer
        if answer is not None and (best is None or answer.certainty > best.certainty):
            best = answer
    for builtin in (_json, _avro, _csv):
        answer = builtin(values, resolver)
        if answer is not None and (best is None or answer.certainty > best.certainty):
            best = answer
    return best if best is not None and best.certainty > 0 else None


def _json(samples: list[bytes], _resolver: SchemaResolver | None) -> Classified | None:
    objects = []
    for sample in samples:
        try:
            value = orjson.loads(sample)
        except orjson.JSONDecodeError:
            continue
        if isinstance(value, dict):
            objects.append(sample)
    if not objects:
        return None
    return Classified("json", len(objects) / len(samples), infer_schema(objects, format="json"), "json")


def _avro(samples: list[bytes], resolver: SchemaResolver | None) -> Classified | None:
    if all(s.startswith(_AVRO_CONTAINER) for s in samples):
        try:
            schema = infer_schema(samples[0], format="avro")
        except (ConfigurationError, ImportError):
            return None
        return Classified("avro", 1.0, schema, "avro")
    if resolver is None or not all(len(s) > 5 and s[0] == 0 for s in samples):
        return None
    from stream_etl.formats.avro import avro_to_arrow
    from stream_etl.formats.inference import unify_schemas

    ids = sorted({struct.unpack(">I", s[1:5])[0] for s in samples})
    texts = [resolver.resolve(i) for i in ids]
    if any(t is None for t in texts):
        return None
    schema = unify_schemas([avro_to_arrow(t) for t in texts if t is not None])
    return Classified("avro", 1.0, schema, "avro", {"wire_format": "confluent", "schema_ids": json.dumps(ids)})


def _csv(samples: list[bytes], _resolver: SchemaResolver | None) -> Classified | None:
    lines = _text_lines(samples)
    for delimiter in _CSV_DELIMITERS:
        found = csv_schema(lines, delimiter=delimiter, header="detect")
        if found is not None:
            schema, has_header = found
            return Classified("csv", 0.8 if has_header else 0.7, schema, "csv", {"delimiter": delimiter})
    return None


def csv_schema(
    lines: list[str],
    *,
    delimiter: str = ",",
    quote_char: str = '"',
    header: Literal["present", "absent", "detect"] = "detect",
    columns: Sequence[str] | None = None,
) -> tuple[pa.Schema, bool] | None:
    """The schema of CSV ``lines`` and whether the first is a header, or None when they do not
    split into the same number (>= 2) of fields. A header is detected (``header="detect"``) when
    the first line is unique non-empty names and a column below it is not text."""
    if not lines:
        return None
    parse = pa_csv.ParseOptions(delimiter=delimiter, quote_char=quote_char, newlines_in_values=False)
    buffer = pa.py_buffer(_csv_bytes(lines))
    try:
        raw = pa_csv.read_csv(
            buffer, read_options=pa_csv.ReadOptions(autogenerate_column_names=True), parse_options=parse
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None
    if raw.num_columns < 2 or raw.num_rows != len(lines):
        return None
    if header == "detect":
        first = [raw.column(i)[0].as_py() for i in range(raw.num_columns)]
        names_like = all(isinstance(v, str) and v and not _numeric(v) for v in first) and len(set(first)) == len(first)
        header = "present" if names_like and len(lines) > 1 and _typed(lines[1:], delimiter, quote_char) else "absent"
    if header == "present":
        options = pa_csv.ReadOptions(column_names=list(columns)) if columns else pa_csv.ReadOptions()
        if columns:
            lines = lines[1:]
            buffer = pa.py_buffer(_csv_bytes(lines))
    else:
        names = list(columns) if columns else [f"col{i}" for i in range(raw.num_columns)]
        options = pa_csv.ReadOptions(column_names=names)
    try:
        table = pa_csv.read_csv(buffer, read_options=options, parse_options=parse)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None
    return table.schema, header == "present"


def _typed(lines: list[str], delimiter: str, quote_char: str) -> bool:
    """Whether some column of ``lines`` reads as something other than text."""
    parse = pa_csv.ParseOptions(delimiter=delimiter, quote_char=quote_char)
    try:
        table = pa_csv.read_csv(
            pa.py_buffer(_csv_bytes(lines)),
            read_options=pa_csv.ReadOptions(autogenerate_column_names=True),
            parse_options=parse,
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return False
    return any(not pa.types.is_string(t) and not pa.types.is_null(t) for t in table.schema.types)


def _numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _text_lines(samples: Sequence[bytes]) -> list[str]:
    lines: list[str] = []
    for sample in samples:
        try:
            text = sample.decode("utf-8")
        except UnicodeDecodeError:
            return []
        lines.extend(line for line in text.splitlines() if line.strip())
    return lines


_PATH_STEP = re.compile(r"\.([A-Za-z_][\w\-]*)|\[\*\]|\['([^']+)'\]|\[(\d+)\]")


def _json_path(path: str) -> list[str | int | None]:
    """``$.a.b[*]``, ``$['a'][0]``: keys (str), indexes (int) and ``[*]`` (None)."""
    if not path.startswith("$"):
        msg = f"JSON path {path!r} must start with '$' (e.g. $.records[*])"
        raise ConfigurationError(msg)
    steps: list[str | int | None] = []
    rest = path[1:]
    while rest:
        match = _PATH_STEP.match(rest)
        if match is None:
            msg = f"JSON path {path!r}: cannot read {rest!r}; use .key, ['key'], [0] or [*]"
            raise ConfigurationError(msg)
        if match[1] or match[2]:
            steps.append(match[1] or match[2])
        elif match[3]:
            steps.append(int(match[3]))
        else:
            steps.append(None)
        rest = rest[match.end() :]
    return steps


def _select(value: Any, path: list[str | int | None]) -> list[Any]:
    if not path:
        return [value]
    step, rest = path[0], path[1:]
    if step is None:
        return [x for item in value for x in _select(item, rest)] if isinstance(value, list) else []
    if isinstance(step, int):
        return _select(value[step], rest) if isinstance(value, list) and -len(value) <= step < len(value) else []
    return _select(value[step], rest) if isinstance(value, dict) and step in value else []


def _csv_bytes(lines: list[str]) -> bytes:
    return "".join(line + "\n" for line in lines).encode()  # Arrow refuses a lone line without its newline
