"""Event triggers against the real broker and S3: new records on a topic (batch size, batch
window), new objects under a prefix; data that was there first never fires; a slot fires once
even with two schedulers. The clock is injected to cross the batch window."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pyarrow.fs as pafs

from connectors.kafka.admin import produce
from stream_etl.control.connections import Connections
from stream_etl.control.jobs import Jobs, parse_spec
from stream_etl.control.models import utcnow
from stream_etl.control.scheduler import Scheduler
from stream_etl.control.store import Store
from stream_etl.control.trigger_specs import parse_trigger
from stream_etl.control.triggers import Triggers
from tests.services import Services


def _event_trigger(store: Store, event: dict[str, object]) -> tuple[Jobs, Scheduler, Scheduler]:
    jobs = Jobs(store)
    jobs.create(parse_spec({"name": "load", "topology": "topologies/orders.py", "mode": "until_caught_up"}))
    Triggers(store).create(
        parse_trigger({"name": "on-data", "type": "EVENT", "event": event, "actions": [{"job": "load"}]})
    )
    return jobs, *(Scheduler(store, Connections(store, None), name=n, environ={}) for n in ("s1", "s2"))


def _send(services: Services, topic: str, count: int) -> None:
    """One produce request per record: Tansu's high watermark is the last record batch's base
    offset + 1, so a batch of many records moves it by one (a real broker counts every record)."""
    for _ in range(count):
        produce(services.kafka_bootstrap, topic, [b"{}"])


def _finish_runs(jobs: Jobs) -> None:
    for run in jobs.list_runs(job="load", state="WAITING"):
        jobs.update_run(run.id, state="SUCCEEDED")


def test_new_records_on_a_topic_fire_by_batch_size_or_window(
    store: Store, services: Services, topic: Callable[..., str]
) -> None:
    name = topic(partitions=2)
    produce(services.kafka_bootstrap, name, [b"{}"] * 5)  # there before the trigger: never counts
    event = {"source": "kafka", "topic": name, "batch_size": 10, "batch_window_s": 60}
    jobs, first, second = _event_trigger(store, {**event, "connection": None})
    first.settings = second.settings = services.settings()
    now = utcnow()
    assert first.tick(now) == []  # baseline
    _send(services, name, 4)
    assert first.tick(now) == []  # 4 < 10, window not over
    _send(services, name, 6)
    (fired,) = first.tick(now + timedelta(seconds=1))
    assert "new record(s) on topic" in fired.reason and fired.actions[0].state == "WAITING"
    assert second.tick(now + timedelta(seconds=2)) == [] and first.tick(now + timedelta(seconds=2)) == []
    _finish_runs(jobs)

    _send(services, name, 1)  # one record: fires when the window is over
    assert first.tick(now + timedelta(seconds=10)) == []
    assert first.tick(now + timedelta(seconds=69)) == []
    (late,) = first.tick(now + timedelta(seconds=71))
    assert "after 60 s" in late.reason
    assert len(jobs.list_runs(job="load")) == 2


def test_new_objects_under_an_s3_prefix_fire(store: Store, services: Services, unique: str) -> None:
    fs = pafs.S3FileSystem(
        endpoint_override=services.s3_endpoint.split("://")[1],
        scheme="http",
        access_key=services.access_key,
        secret_key=services.secret_key,
    )
    prefix = f"{services.bucket}/{unique}/landing"

    def put(key: str) -> None:
        with fs.open_output_stream(f"{prefix}/{key}") as out:
            out.write(b'{"id": 1}\n')

    put("old.json")
    event = {"source": "s3", "location": f"s3://{prefix}", "batch_size": 2, "batch_window_s": 900}
    jobs, first, _second = _event_trigger(store, event)
    first.settings = services.settings()
    assert first.tick() == []  # baseline: old.json
    put("dt=1/a.json")
    assert first.tick() == []
    put("dt=1/b.json")
    (fired,) = first.tick()
    assert fired.reason == f"2 new object(s) under s3://{prefix}"
    assert first.tick() == []
