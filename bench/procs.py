"""Run a subprocess and measure it: launch and exit time, peak RSS, CPU time."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import psutil


@dataclass(frozen=True, slots=True)
class Measured:
    """What the parent saw of one child process. Times are ``time.time()`` wall clock."""

    command: list[str]
    launched_at: float
    exited_at: float
    returncode: int
    peak_rss_bytes: int
    rss_samples: int
    cpu_user_s: float
    cpu_system_s: float
    timed_out: bool
    threads_cpu_s: dict[str, float]
    #: (seconds since launch, RSS MiB), at most ~60 points
    rss_timeline: list[tuple[float, float]]

    @property
    def wall_s(self) -> float:
        return self.exited_at - self.launched_at

    @property
    def cpu_s(self) -> float:
        """CPU seconds of the process tree: ``wait4`` covers the child and the descendants it
        reaped; the thread samples also cover descendants it did not (py-spy's target)."""
        return max(self.cpu_user_s + self.cpu_system_s, sum(self.threads_cpu_s.values()))


class RssSampler(threading.Thread):
    """Polls the RSS of a process tree (the process and all its descendants), and the
    CPU time of every thread of its Python processes, by thread name."""

    def __init__(self, pid: int, interval_s: float) -> None:
        super().__init__(name=f"rss-{pid}", daemon=True)
        self.pid, self.interval_s = pid, interval_s
        self.peak = 0
        self.samples = 0
        self.done = threading.Event()
        #: (pid, tid) -> (thread group name, highest user+system CPU seconds seen)
        self.threads: dict[tuple[int, int], tuple[str, float]] = {}
        self.timeline: list[tuple[float, int]] = []

    #: Descendants are looked up every this many samples (a scan of /proc: the costly part).
    TREE_EVERY = 20
    #: Threads are read every this many samples.
    THREADS_EVERY = 2

    def run(self) -> None:
        try:
            root = psutil.Process(self.pid)
        except psutil.Error:
            return
        tree = [root]
        while not self.done.is_set():
            if self.samples % self.TREE_EVERY == 0:
                with contextlib.suppress(psutil.Error):
                    tree = [root, *root.children(recursive=True)]
            self._sample(tree, threads=self.samples % self.THREADS_EVERY == 0)
            self.done.wait(self.interval_s)

    def _sample(self, tree: list[psutil.Process], *, threads: bool) -> None:
        total = 0
        for process in tree:
            with contextlib.suppress(psutil.Error):
                total += process.memory_info().rss
                if threads:
                    self._sample_threads(process)
        if total:
            self.samples += 1
            self.peak = max(self.peak, total)
            self.timeline.append((time.time(), total))

    def downsampled(self, since: float, points: int = 60) -> list[tuple[float, float]]:
        """The RSS timeline in MiB, keeping the highest sample of each of ``points`` slices."""
        if not self.timeline:
            return []
        step = max(len(self.timeline) // points, 1)
        out = []
        for start in range(0, len(self.timeline), step):
            at, rss = max(self.timeline[start : start + step], key=lambda sample: sample[1])
            out.append((round(at - since, 2), round(rss / 1024 / 1024, 1)))
        return out

    def _sample_threads(self, process: psutil.Process) -> None:
        pid = process.pid
        for thread in process.threads():
            key = (pid, thread.id)
            known = self.threads.get(key)
            name = known[0] if known else _thread_group(pid, thread.id)
            self.threads[key] = (name, max(thread.user_time + thread.system_time, known[1] if known else 0.0))

    def threads_cpu(self) -> dict[str, float]:
        """CPU seconds per thread group, as last seen (threads that end between samples lose < interval)."""
        groups: dict[str, float] = {}
        for name, seconds in self.threads.values():
            groups[name] = groups.get(name, 0.0) + seconds
        return {k: round(v, 2) for k, v in sorted(groups.items(), key=lambda kv: -kv[1])}


def _thread_group(pid: int, tid: int) -> str:
    """``main`` for the main thread, else the thread's name (/proc comm) without trailing digits.

    Python threads and Arrow's thread pool do not name their OS threads: they keep the
    process name (``python``). librdkafka names its threads ``rdk:*``, tokio (delta-rs)
    ``tokio-runtime-w``.
    """
    if tid == pid:
        return "main"
    try:
        name = Path(f"/proc/{pid}/task/{tid}/comm").read_text().strip()
    except OSError:
        return "?"
    return name.rstrip("0123456789") or name


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    """Linux: the kernel kills the child when the benchmark dies (Ctrl-C, crash)."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def run_measured(
    command: list[str],
    *,
    env: dict[str, str],
    cwd: Path,
    stdout: IO[bytes],
    stderr: IO[bytes],
    interval_s: float = 0.05,
    timeout_s: float = 900.0,
) -> Measured:
    """Start ``command``, sample its RSS every ``interval_s``, wait for it to exit.

    The launch timestamp is taken right before the fork; the exit timestamp right
    after ``wait4`` returns, which also gives the child's own CPU time.
    """
    launched_at = time.time()
    process = subprocess.Popen(
        command,
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=stderr,
        preexec_fn=_die_with_parent,
    )
    sampler = RssSampler(process.pid, interval_s)
    sampler.start()
    timed_out = threading.Event()

    def kill() -> None:
        timed_out.set()
        with contextlib.suppress(ProcessLookupError):
            process.kill()

    watchdog = threading.Timer(timeout_s, kill)
    watchdog.daemon = True
    watchdog.start()
    try:
        _, status, usage = os.wait4(process.pid, 0)
    except BaseException:
        kill()
        process.wait()
        raise
    finally:
        watchdog.cancel()
        sampler.done.set()
    exited_at = time.time()
    process.returncode = os.waitstatus_to_exitcode(status)
    sampler.join()
    return Measured(
        command=command,
        launched_at=launched_at,
        exited_at=exited_at,
        returncode=process.returncode,
        peak_rss_bytes=sampler.peak,
        rss_samples=sampler.samples,
        cpu_user_s=usage.ru_utime,
        cpu_system_s=usage.ru_stime,
        timed_out=timed_out.is_set(),
        threads_cpu_s=sampler.threads_cpu(),
        rss_timeline=sampler.downsampled(launched_at),
    )


def cpu_seconds(pids: dict[str, int]) -> dict[str, float]:
    """User + system CPU seconds each of ``pids`` has used so far (missing ones are left out)."""
    found: dict[str, float] = {}
    for name, pid in pids.items():
        with contextlib.suppress(psutil.Error):
            times = psutil.Process(pid).cpu_times()
            found[name] = times.user + times.system
    return found
