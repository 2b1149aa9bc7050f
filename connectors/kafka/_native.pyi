"""Types of the C extension connectors/kafka/_native.c."""

from typing import Any

def load(path: str) -> None: ...

class Queue:
    def __init__(self, consumer: Any) -> None: ...
    def forward(self, topic: str, partition: int, pid: int) -> None: ...
    def reforward(self) -> None: ...
    def consume(
        self, max_messages: int, timeout_ms: int, timestamps: bool, keys: bool
    ) -> (
        tuple[
            int,
            bytes,
            bytes,
            bytes,
            bytes,
            int,
            int,
            list[int],
            bytes | None,
            bytes | None,
            bytes | None,
            bytes | None,
            list[tuple[int, str, int, int, str]],
        ]
        | None
    ): ...
    def close(self) -> None: ...
