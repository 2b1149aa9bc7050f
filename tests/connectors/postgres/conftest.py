"""The machine's Postgres (127.0.0.1:5432, trust auth, database ``test``) and a fresh table name per test."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.services import drop_postgres_table

DSN = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture
def dsn() -> str:
    return DSN


@pytest.fixture
def pg_table() -> Iterator[str]:
    """A unique table name; the table and its dead-letter table are dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    yield name
    drop_postgres_table(DSN, name)


@pytest.fixture
def open_writer() -> Iterator[Callable[..., Any]]:
    """``open_writer(sink, ctx)``: an open writer, closed after the test (no connection left behind)."""
    opened: list[Any] = []

    def open_(sink: Any, ctx: Any) -> Any:
        writer = sink.open(ctx)
        opened.append(writer)
        return writer

    yield open_
    for writer in opened:
        writer.close()
