"""kinesalite, a local Kinesis (Node.js), as a child process on 127.0.0.1.

`make kinesalite` installs it from ``tools/kinesalite`` (npm, pinned). Its own CLI binds
every interface, so it is started from a one-line Node script that listens on loopback.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from stream_etl.devstack import KINESALITE, KINESALITE_SCRIPT
from stream_etl.errors import ServiceError

ROOT = Path(__file__).resolve().parents[2]
MODULE = KINESALITE


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    import ctypes

    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class Kinesalite:
    """``with Kinesalite(port) as k: k.endpoint`` — started on enter, killed on exit."""

    def __init__(self, port: int, *, log: Path | None = None, die_with_parent: bool = True) -> None:
        self.port = port
        self.log = log
        self.die_with_parent = die_with_parent
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 30.0) -> str:
        node = shutil.which("node")
        if node is None:
            msg = "kinesalite needs Node.js (node) on PATH"
            raise ServiceError(msg)
        if not MODULE.is_dir():
            msg = f"kinesalite is not installed at {MODULE}: run `make kinesalite`"
            raise ServiceError(msg)
        output = self.log.open("ab") if self.log else subprocess.DEVNULL
        try:
            self.process = subprocess.Popen(  # noqa: S603 - fixed arguments
                [node, "-e", KINESALITE_SCRIPT, str(MODULE), str(self.port)],
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent if self.die_with_parent else None,  # noqa: PLW1509
                cwd=str(ROOT),
            )
        finally:
            if self.log and not isinstance(output, int):
                output.close()
        deadline = time.monotonic() + timeout_s
        while not _listening(self.port):
            if self.process.poll() is not None:
                msg = f"kinesalite exited with {self.process.returncode} (log: {self.log})"
                raise ServiceError(msg)
            if time.monotonic() > deadline:
                self.stop()
                msg = f"kinesalite did not listen on 127.0.0.1:{self.port} within {timeout_s}s"
                raise ServiceError(msg)
            time.sleep(0.05)
        return self.endpoint

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)

    def __enter__(self) -> Kinesalite:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0
