"""Where the benchmark's Kafka and S3 come from: its own local stack, or one given by the environment."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from stream_etl.devstack import DevStack, StackState, free_port
from stream_etl.errors import ServiceError
from stream_etl.settings import Settings

BUCKET = "bench"


@dataclass(frozen=True, slots=True)
class Stack:
    """Endpoints and settings for every process of the benchmark."""

    environment: dict[str, str]
    bucket: str
    external: bool
    state_dir: Path | None = None
    pids: dict[str, int] = field(default_factory=dict)
    startup_s: float = 0.0

    @property
    def settings(self) -> Settings:
        return Settings.from_environment(self.environment)

    @property
    def kafka_bootstrap(self) -> str:
        return self.environment["STREAM_ETL_KAFKA_BOOTSTRAP_SERVERS"]

    def child_environment(self) -> dict[str, str]:
        """The benchmark's environment with the stack's settings over it."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("STREAM_ETL_")}
        env.update(self.environment)
        env.setdefault("PYTHONUNBUFFERED", "1")
        return env


def external_stack() -> Stack | None:
    """The stack named by STREAM_ETL_KAFKA_BOOTSTRAP_SERVERS and STREAM_ETL_S3_ENDPOINT_URL, if both are set.

    Every other STREAM_ETL_* variable (credentials, region, Kafka options) is passed on
    as it is; STREAM_ETL_BENCH_BUCKET names the bucket (default ``lake``), which must exist.
    """
    if not (os.environ.get("STREAM_ETL_KAFKA_BOOTSTRAP_SERVERS") and os.environ.get("STREAM_ETL_S3_ENDPOINT_URL")):
        return None
    environment = {
        k: v for k, v in os.environ.items() if k.startswith("STREAM_ETL_") and k != "STREAM_ETL_BENCH_BUCKET"
    }
    return Stack(environment, os.environ.get("STREAM_ETL_BENCH_BUCKET", "lake"), external=True)


@contextmanager
def bench_stack(*, keep: bool = False) -> Iterator[Stack]:
    """The external stack if one is configured, else a fresh local one on free ports.

    The local stack lives in a temporary directory and is stopped (and deleted) at the
    end. With ``keep`` it is started detached (not tied to this process) and left
    running, and the way to stop it is printed.
    """
    external = external_stack()
    if external is not None:
        yield external
        return
    started = time.monotonic()
    stack, state = _start_local(keep)
    state_dir = stack.state_dir
    try:
        yield Stack(
            state.environment(),
            state.bucket,
            external=False,
            state_dir=state_dir,
            pids=dict(state.pids),
            startup_s=time.monotonic() - started,
        )
    finally:
        if keep:
            print(
                f"\nthe local stack keeps running (state in {state_dir}):\n"
                + "".join(f"  export {k}={v}\n" for k, v in state.environment().items())
                + f"stop it with: {Path(sys.executable).parent / 'stream-etl'} dev down --state-dir {state_dir}",
                file=sys.stderr,
            )
        else:
            stack.down(grace_s=1.0)
            shutil.rmtree(state_dir, ignore_errors=True)


def _start_local(keep: bool, attempts: int = 3) -> tuple[DevStack, StackState]:
    """Start Tansu and SeaweedFS on free ports; try again on fresh ports if a start fails.

    (Ports are picked free and then bound by the services a moment later, so another
    process on the machine can take one in between.)
    """
    for attempt in range(1, attempts + 1):
        state_dir = Path(tempfile.mkdtemp(prefix="stream-etl-bench-"))
        stack = DevStack(
            state_dir, kafka_port=free_port(), s3_port=free_port(), bucket=BUCKET, die_with_parent=not keep
        )
        try:
            return stack, stack.up(timeout_s=90)
        except ServiceError as exc:
            if attempt == attempts:
                raise
            first = str(exc).splitlines()[0]
            print(
                f"[bench] the local stack did not start ({first}); logs kept in {state_dir}; retrying", file=sys.stderr
            )
        except BaseException:
            shutil.rmtree(state_dir, ignore_errors=True)
            raise
    msg = "unreachable"
    raise AssertionError(msg)
