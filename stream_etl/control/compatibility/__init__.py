"""Schema compatibility for the registry: one checker module per data format.

Each checker answers one question, "can a consumer with schema ``reader`` read data written
with schema ``writer``?", as a list of reasons why not (empty: it can). The modes combine it:

- ``BACKWARD``: the new version reads data written with the latest one (``BACKWARD_ALL``: with
  every earlier one). Upgrade consumers first.
- ``FORWARD``: the latest version (``FORWARD_ALL``: every earlier one) reads data written with
  the new one. Upgrade producers first.
- ``FULL`` / ``FULL_ALL``: both.
- ``NONE``: no check. ``DISABLED``: no new versions at all.

A checker module has ``normalize(definition) -> (canonical, parsed)`` (raises
:class:`~stream_etl.errors.ConfigurationError` for an invalid definition) and
``reader_problems(reader, writer) -> list[str]`` on parsed definitions.
"""

from __future__ import annotations

import hashlib
import importlib
from collections.abc import Sequence
from typing import Any, Literal, get_args

DataFormat = Literal["AVRO", "JSON", "PROTOBUF"]
Mode = Literal["NONE", "DISABLED", "BACKWARD", "BACKWARD_ALL", "FORWARD", "FORWARD_ALL", "FULL", "FULL_ALL"]
DATA_FORMATS: tuple[str, ...] = get_args(DataFormat)
MODES: tuple[str, ...] = get_args(Mode)

_CHECKERS = {
    "AVRO": "stream_etl.control.compatibility.avro",
    "JSON": "stream_etl.control.compatibility.json_schema",
    "PROTOBUF": "stream_etl.control.compatibility.protobuf",
}


def _checker(data_format: str) -> Any:
    return importlib.import_module(_CHECKERS[data_format])


def parse(data_format: str, definition: str) -> tuple[str, Any]:
    """``(fingerprint, parsed)`` of a definition: the SHA-256 of its canonical form, and what
    :func:`problems` compares. Raises ConfigurationError when the definition is invalid."""
    canonical, parsed = _checker(data_format).normalize(definition)
    return hashlib.sha256(canonical.encode()).hexdigest(), parsed


def against(mode: str, versions: Sequence[int]) -> list[int]:
    """The existing versions (ascending) a new one is checked against under ``mode``."""
    if mode in ("NONE", "DISABLED") or not versions:
        return []
    return list(versions) if mode.endswith("_ALL") else [versions[-1]]


def problems(data_format: str, mode: str, new: Any, old: Any, *, old_label: str = "the previous version") -> list[str]:
    """Why ``new`` may not follow ``old`` under ``mode`` (parsed definitions); empty when it may."""
    checker = _checker(data_format)
    found: list[str] = []
    if mode.startswith(("BACKWARD", "FULL")):
        found += [f"BACKWARD ({old_label}): {p}" for p in checker.reader_problems(new, old)]
    if mode.startswith(("FORWARD", "FULL")):
        found += [f"FORWARD ({old_label}): {p}" for p in checker.reader_problems(old, new)]
    return found
