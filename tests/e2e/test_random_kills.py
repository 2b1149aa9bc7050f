"""SIGKILL at random crash points and random moments, several times in a row: exactly once."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.chaos import Chaos
from tests.services import Services


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("routed", [False, True], ids=["orders", "routed-with-dead-letters"])
def test_killed_at_random_points_and_times_every_record_lands_once(
    services: Services, topic: Callable[..., str], unique: str, tmp_path: Path, routed: bool
) -> None:
    chaos = Chaos(
        services,
        name=unique,
        topic=topic(partitions=4),
        base=f"s3://{services.bucket}/{unique}",
        app_id=unique,
        workdir=tmp_path,
        seed=sum(map(ord, unique)),
        routed=routed,
        chunk=12_000,
        bad_every=997 if routed else 0,
    )

    report = chaos.run(kills=6)

    print(report.as_dict())
    assert report.kills >= 6 and report.records_checked > 0
    assert (report.duplicates, report.missing, report.unexpected) == (0, 0, 0), report.as_dict()
