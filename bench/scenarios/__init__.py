"""Extra scenarios `make bench` runs after the main comparison, each adding its own keys.

A scenario is a function ``(context) -> Outcome``: it may use the running stack and the
produced orders topic, and returns figures (flat keys merged into latest.json, such as
``e2e_rich_rows_per_s``) and problems (a non-empty list fails the benchmark). Register a
new one by appending it to :data:`SCENARIOS`.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.stack import Stack


@dataclass(frozen=True)
class Context:
    stack: Stack
    topic: str
    records: int
    run_id: str
    args: argparse.Namespace
    logs: Path
    main_figures: dict[str, Any]
    #: bench.run.Produced: the topic's expected output and end offsets
    produced: Any = None


@dataclass
class Outcome:
    figures: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


Scenario = Callable[[Context], Outcome]

#: Scenarios in the order they run.
SCENARIOS: list[tuple[str, Scenario]] = []


def _register() -> None:
    from bench.scenarios.freshness import freshness
    from bench.scenarios.kinesis import kinesis
    from bench.scenarios.limits import limits
    from bench.scenarios.postgres import postgres
    from bench.scenarios.rich import rich
    from bench.scenarios.wide import wide_records
    from bench.scenarios.workers import two_workers

    SCENARIOS.append(("limits", limits))
    SCENARIOS.append(("rich", rich))
    SCENARIOS.append(("freshness", freshness))
    SCENARIOS.append(("wide", wide_records))
    SCENARIOS.append(("workers", two_workers))
    SCENARIOS.append(("postgres", postgres))
    SCENARIOS.append(("kinesis", kinesis))


_register()
