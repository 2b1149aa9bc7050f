"""Types of the C extension stream_etl/_flatjson.c."""

from typing import Any

def parse(
    buffer: Any, n: int, names: tuple[bytes, ...], kinds: tuple[int, ...], ignore_unexpected: bool
) -> list[tuple[Any, ...]] | None: ...
