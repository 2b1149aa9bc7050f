"""Fixtures: real services for the session, and a unique topic, table and app id per test."""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from tests.services import KinesisService, Services, running_kinesis, running_services

# Property tests draw the same examples on every run (CI must not fail on a draw no one saw
# before); `HYPOTHESIS_PROFILE=explore pytest ...` draws new ones to hunt for bugs.
settings.register_profile("default", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def pytest_configure(config: pytest.Config) -> None:
    # Under xdist (`make test` runs `pytest -n 6`), hand out tests one at a time rather than in
    # chunks: with the slow tests collected first (below), each free worker takes the longest
    # test left, and no worker sits on a queue of e2e tests while the others idle.
    if getattr(config.option, "maxschedchunk", "absent") is None:
        config.option.maxschedchunk = 1


def _start_order(item: pytest.Item) -> int:
    """Slow tests first, then those on real services, then the rest (each group in collection order)."""
    if item.get_closest_marker("slow"):
        return 0
    return 1 if item.get_closest_marker("services") else 2


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if {"services", "kinesis"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.services)
    if not os.environ.get("STREAM_ETL_CHAOS"):  # the soak runs only from `make chaos`
        soak = [item for item in items if item.get_closest_marker("chaos")]
        if soak:
            config.hook.pytest_deselected(items=soak)
            items[:] = [item for item in items if not item.get_closest_marker("chaos")]
    items.sort(key=_start_order)  # stable; every xdist worker collects the same order


@pytest.fixture(scope="session")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    with running_services(tmp_path_factory.mktemp("services")) as found:
        yield found


@pytest.fixture(scope="session")
def kinesis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KinesisService]:
    """kinesalite (a local Kinesis) for the session, stopped at its end."""
    with running_kinesis(tmp_path_factory.mktemp("kinesis")) as found:
        yield found


@pytest.fixture
def unique(request: pytest.FixtureRequest) -> str:
    """A short name unique to this test, safe for topics, prefixes and app ids."""
    name = re.sub(r"[^A-Za-z0-9]+", "-", request.node.name).strip("-").lower()[:40]
    return f"{name}-{uuid.uuid4().hex[:6]}"


@pytest.fixture
def topic(services: Services, unique: str) -> Callable[..., str]:
    """Create a fresh topic: ``topic(partitions=4)``."""
    from connectors.kafka.admin import ensure_topic

    def make(partitions: int = 4, suffix: str = "") -> str:
        name = f"t-{unique}{suffix}"
        ensure_topic(services.kafka_bootstrap, name, partitions=partitions)
        return name

    return make


#: Every Kafka client the source supports; tests that take ``kafka_client`` run once per client.
#: ``confluent`` reads through the native record path (connectors/kafka/native.py) when it is
#: built; ``confluent-python`` is confluent-kafka with that path off (its Message API).
KAFKA_CLIENTS = ("confluent", "confluent-python", "aiokafka")


@pytest.fixture(params=KAFKA_CLIENTS)
def kafka_client(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The Kafka client a test reads with: KafkaSource(client=...) or STREAM_ETL_KAFKA_CLIENT."""
    if request.param == "confluent-python":
        monkeypatch.setenv("STREAM_ETL_KAFKA_NATIVE", "0")  # worker processes inherit it
        return "confluent"
    return str(request.param)


@pytest.fixture
def table_uri(services: Services, unique: str) -> str:
    return f"s3://{services.bucket}/{unique}/table"


@pytest.fixture
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent
