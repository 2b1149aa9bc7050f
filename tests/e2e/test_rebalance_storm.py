"""A rebalance storm: workers of one job join and leave (SIGTERM, SIGKILL) every few seconds
while records keep arriving; at the end one worker drains. Every record exactly once.

Each change waits for the group to settle (every live worker assigned again) before the
next one: a worker SIGKILLed in the middle of a join leaves a member that Tansu never
expires (docs/ARCHITECTURE.md, "Tansu quirks"), which would stall the group for good.
A member killed while the group is stable is expired after session.timeout.ms (6 s).
"""

from __future__ import annotations

import random
import re
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from connectors.kafka.admin import produce
from stream_etl.samples import orders
from tests.e2e.workers import assert_positions_only_advance, assert_same_orders, read_table, run_worker, start_worker
from tests.services import Services

#: A worker reading during its group join logs "assigned" (every partition, read early) before
#: the group answers; it holds an assignment only after the verdict ("kept", or dropped: a
#: "revoked" then the group's own "assigned"). SIGKILLing it before then kills it mid-join.
_EVENT = re.compile(
    r"stream_etl\.fetcher: (assigned|revoked) "
    r"|connectors\.kafka\.source: .*(during the group join|keeping what was read during the join)"
)
_NAMES = {"during the group join": "joining", "keeping what was read during the join": "kept"}


@dataclass
class _Worker:
    process: subprocess.Popen[bytes]
    log: Path

    def events(self) -> list[str]:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return [fetcher or _NAMES[source] for fetcher, source in _EVENT.findall(text)]

    def assignments(self) -> int:
        return sum(event in ("assigned", "kept") for event in self.events())

    def settled(self) -> bool:
        events = self.events()
        return bool(events) and events[-1] in ("assigned", "kept")


def _settle(live: list[_Worker], before: dict[int, int], what: str, timeout: float = 120) -> None:
    """Wait until every live worker got a new assignment since ``before`` and holds it."""
    deadline = time.monotonic() + timeout
    while True:
        for worker in live:
            assert worker.process.poll() is None, f"a worker died:\n{worker.log.read_text()[-3000:]}"
        if all(w.assignments() > before.get(w.process.pid, 0) and w.settled() for w in live):
            return
        if time.monotonic() > deadline:
            logs = "\n---\n".join(w.log.read_text()[-1500:] for w in live)
            raise AssertionError(f"the group did not settle after {what}:\n{logs}")
        time.sleep(0.2)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_workers_joining_and_leaving_every_few_seconds_write_every_record_once(
    services: Services, topic: Callable[..., str], table_uri: str, unique: str, tmp_path: Path
) -> None:
    name = topic(partitions=4)
    args = {"topic": name, "table": table_uri, "batch_records": "1000"}
    rng = random.Random(sum(map(ord, unique)))
    produced, chunk = 0, 5_000
    started = 0
    live: list[_Worker] = []
    finished: list[_Worker] = []
    actions: list[str] = []

    def add() -> None:
        nonlocal started
        before = {w.process.pid: w.assignments() for w in live}
        log = tmp_path / f"worker-{started}.log"
        started += 1
        live.append(_Worker(start_worker(services, app_id=unique, args=args, log=log), log))
        _settle(live, before, "a worker joined")

    def remove(how: signal.Signals) -> None:
        victim = live.pop(rng.randrange(len(live)))
        before = {w.process.pid: w.assignments() for w in live}
        victim.process.send_signal(how)
        victim.process.wait(timeout=120)
        finished.append(victim)
        if how == signal.SIGTERM:
            assert victim.process.returncode == 0, victim.log.read_text()[-3000:]
        _settle(live, before, f"a worker left ({how.name})")

    try:
        produce(services.kafka_bootstrap, name, orders(chunk))
        produced += chunk
        add()
        add()
        for _ in range(10):
            produce(services.kafka_bootstrap, name, orders(chunk, start=produced))
            produced += chunk
            time.sleep(rng.uniform(0.5, 3.0))  # let commits run into the change
            choices = ["add"] * (len(live) < 4) + ["sigterm", "sigkill"] * (len(live) > 1)
            action = rng.choice(choices)
            actions.append(action)
            if action == "add":
                add()
            else:
                remove(signal.SIGTERM if action == "sigterm" else signal.SIGKILL)
        # One at a time, the group settled in between: a worker that stops while the group is
        # still rebalancing after another's departure can leave mid-join, a member Tansu never
        # expires (the drain below would then wait forever for its own join).
        while live:
            remove(signal.SIGTERM)
    finally:
        for worker in live:
            if worker.process.poll() is None:
                worker.process.kill()
                worker.process.wait()

    run_worker(services, app_id=unique, args=args, log=tmp_path / "drain.log", timeout=300)

    print(f"storm actions: {actions}; {started} workers")
    assert_same_orders(read_table(table_uri, services), range(produced))
    assert assert_positions_only_advance(table_uri, services, unique) >= 2
