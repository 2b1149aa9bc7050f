"""Kill a worker again and again, at named crash points and at random moments, then check
every record landed exactly once. Shared by tests/e2e/test_random_kills.py (a few kills,
in `make test`) and tests/chaos/test_soak.py (>= 50 kills, `make chaos`).

A kill cycle starts a worker (until caught up) and either arms a crash point
(``STREAM_ETL_FAULT=<point>:<n>``, n random) or SIGKILLs it a random delay after its
first new commit. Random-time kills wait for a commit so they never hit a group join:
Tansu never expires a member that vanished mid-join (docs/ARCHITECTURE.md).
When a worker catches up before its kill, more records are produced.
"""

from __future__ import annotations

import random
import signal
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from connectors.kafka.admin import produce
from stream_etl.faults import POINTS
from stream_etl.samples import malformed, order, orders
from tests.e2e.workers import ORDERS, ROOT, read_table, run_worker, start_worker, table_version
from tests.services import Services

ROUTED = str(ROOT / "topologies" / "orders_routed.py")
TIERS = {"small": (0, 10_000), "medium": (10_000, 30_000), "large": (30_000, 10**12)}
Mode = Literal["point", "random"]


@dataclass
class ChaosReport:
    """What one scenario did and found; ``duplicates`` and ``missing`` must be 0."""

    scenario: str
    kills: int = 0
    kills_by_point: Counter[str] = field(default_factory=Counter)
    random_time_kills: int = 0
    worker_runs: int = 0
    finished_before_kill: int = 0
    records_produced: int = 0
    records_checked: int = 0
    duplicates: int = 0
    missing: int = 0
    unexpected: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "kills_by_point": dict(sorted(self.kills_by_point.items()))}


class Chaos:
    """One scenario: a topic, a job, its tables, and a random generator seeded for replay."""

    def __init__(
        self,
        services: Services,
        *,
        name: str,
        topic: str,
        base: str,
        app_id: str,
        workdir: Path,
        seed: int,
        routed: bool = False,
        batch_records: int = 1000,
        chunk: int = 20_000,
        bad_every: int = 0,
        max_random_delay_s: float = 1.5,
    ) -> None:
        self.services, self.topic, self.base, self.app_id = services, topic, base, app_id
        self.workdir, self.rng, self.routed = workdir, random.Random(seed), routed
        self.chunk, self.bad_every, self.max_random_delay_s = chunk, bad_every, max_random_delay_s
        self.topology = ROUTED if routed else ORDERS
        self.primary = f"{base}/small" if routed else f"{base}/orders"
        self.args = {"topic": topic, "batch_records": str(batch_records)}
        self.args.update({"base": base} if routed else {"table": self.primary})
        self.report = ChaosReport(name)
        self._started = time.monotonic()

    def produce_more(self) -> None:
        start = self.report.records_produced
        produce(self.services.kafka_bootstrap, self.topic, orders(self.chunk, start=start, bad_every=self.bad_every))
        self.report.records_produced += self.chunk

    def run(self, kills: int, modes: tuple[Mode, ...] = ("point", "random")) -> ChaosReport:
        """Kill ``kills`` times, finish with an uninterrupted worker, check the tables."""
        self.produce_more()
        attempts = 0
        while self.report.kills < kills:
            attempts += 1
            assert attempts <= 3 * kills + 10, f"only {self.report.kills} of {kills} kills landed"
            self._cycle(self.rng.choice(modes))
        run_worker(
            self.services,
            app_id=self.app_id,
            args=self.args,
            log=self.workdir / "final.log",
            topology=self.topology,
            timeout=600,
        )
        self.report.worker_runs += 1
        self._check()
        self.report.seconds = round(time.monotonic() - self._started, 1)
        return self.report

    def _cycle(self, mode: Mode) -> None:
        report = self.report
        log = self.workdir / f"worker-{report.worker_runs}.log"
        env: dict[str, str] = {}
        point = ""
        if mode == "point":
            point = self.rng.choice(POINTS)
            env["STREAM_ETL_FAULT"] = f"{point}:{self.rng.randint(1, 3)}"
        before = table_version(self.primary, self.services)
        process = start_worker(
            self.services,
            app_id=self.app_id,
            args=self.args,
            log=log,
            topology=self.topology,
            until_caught_up=True,
            extra_env=env,
        )
        report.worker_runs += 1
        try:
            if mode == "random":
                deadline = time.monotonic() + 180
                while table_version(self.primary, self.services) <= before and process.poll() is None:
                    assert time.monotonic() < deadline, f"no commit within 180 s:\n{log.read_text()[-3000:]}"
                    time.sleep(0.05)
                time.sleep(self.rng.uniform(0.0, self.max_random_delay_s))
                if process.poll() is None:
                    process.send_signal(signal.SIGKILL)
            code = process.wait(timeout=300)
        except BaseException:
            process.kill()
            process.wait()
            raise
        if code == -signal.SIGKILL:
            report.kills += 1
            if mode == "point":
                report.kills_by_point[point] += 1
            else:
                report.random_time_kills += 1
        elif code == 0:  # caught up before the kill: give the next worker something to read
            report.finished_before_kill += 1
            self.produce_more()
        else:
            raise AssertionError(f"worker exited {code}:\n{log.read_text()[-3000:]}")

    # checks ---------------------------------------------------------------------------

    def _bad(self, i: int) -> bool:
        return bool(self.bad_every) and i % self.bad_every == self.bad_every - 1

    def _check(self) -> None:
        produced = range(self.report.records_produced)
        if not self.routed:
            expected = {i for i in produced if not self._bad(i) and order(i)["amount"] >= 0}
            self._compare(read_table(self.primary, self.services), "id", expected)
        else:
            for tier, (low, high) in TIERS.items():
                expected = {
                    i
                    for i in produced
                    if not self._bad(i) and (o := order(i))["amount"] >= 0 and low <= round(o["amount"] * 100) < high
                }
                self._compare(read_table(f"{self.base}/{tier}", self.services), "id", expected)
        bad = {malformed(i) for i in produced if self._bad(i)}
        if bad:
            dead_uri = f"{self.base}/dead_letters" if self.routed else f"{self.primary}_dead_letters"
            self._compare(read_table(dead_uri, self.services), "raw", bad)

    def _compare(self, table: Any, column: str, expected: set[Any]) -> None:
        values = table[column].to_pylist() if table is not None else []
        counts = Counter(values)
        report = self.report
        report.records_checked += len(expected)
        report.duplicates += sum(n - 1 for n in counts.values() if n > 1)
        report.missing += len(expected - counts.keys())
        report.unexpected += len(counts.keys() - expected)
