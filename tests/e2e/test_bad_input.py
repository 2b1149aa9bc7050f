"""The bad-input corpus end to end: every record is written or dead-lettered with a reason, none lost."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import confluent_kafka as ck
import pytest

from connectors.kafka.admin import produce
from tests.bad_input import Case, cases
from tests.e2e.workers import ROOT, read_table, run_worker
from tests.services import Services

TOPOLOGY = str(ROOT / "tests" / "e2e" / "bad_input_topology.py")
WARM_UP = 20  # good records first, so the table (and its column spelling) exists before the corpus
BIG = {"message.max.bytes": 20_000_000}

pytestmark = pytest.mark.timeout(600)


def _produce_corpus(bootstrap: str, topic: str, corpus: list[Case]) -> None:
    producer = ck.Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, **BIG})
    failures: list[Any] = []
    for case in corpus:
        producer.produce(
            topic,
            case.value,
            case.key,
            headers=case.headers or None,
            on_delivery=lambda error, _m: failures.append(error) if error else None,
        )
        producer.flush(30)  # one at a time: offsets follow the corpus order
    assert not failures, failures


def _same(expected: Any, got: Any) -> bool:
    if expected in ("nan", "inf", "-inf"):
        return isinstance(got, float) and (math.isnan(got) if expected == "nan" else str(got) == expected)
    return bool(expected == got)


@pytest.mark.parametrize("schema", ["yes", "no"], ids=["explicit-schema", "inferred"])
def test_every_corpus_record_is_written_or_dead_lettered_with_a_reason(
    services: Services, topic: Callable[..., str], table_uri: str, unique: str, tmp_path: Path, schema: str
) -> None:
    name = topic(partitions=1)
    corpus = cases()
    args = {"topic": name, "table": table_uri, "schema": schema}
    warm = [b'{"id": %d, "n": %d, "f": 0.5, "s": "warm"}' % (10_000 + i, i) for i in range(WARM_UP)]
    produce(services.kafka_bootstrap, name, warm)
    run_worker(services, app_id=unique, args=args, log=tmp_path / "warm.log", topology=TOPOLOGY)
    _produce_corpus(services.kafka_bootstrap, name, corpus)

    summary = run_worker(services, app_id=unique, args=args, log=tmp_path / "corpus.log", topology=TOPOLOGY)

    stats = summary["stats"]
    assert stats["records_in"] == len(corpus)
    assert stats["records_in"] == stats["written"] + stats["filtered"] + stats["dead_lettered"]
    table = read_table(table_uri, services)
    dead = read_table(f"{table_uri}_dead_letters", services)
    assert table is not None and dead is not None
    written = {row["_offset"] - WARM_UP: row for row in table.to_pylist() if row["_offset"] >= WARM_UP}
    dead_rows = {row["offset"] - WARM_UP: row for row in dead.to_pylist()}
    assert table.num_rows == WARM_UP + len(written), "a corpus offset was written twice"
    assert dead.num_rows == len(dead_rows), "a corpus offset was dead-lettered twice"
    assert stats["written"] == len(written) and stats["dead_lettered"] == len(dead_rows)
    for index, case in enumerate(corpus):
        outcome, detail = case.with_schema if schema == "yes" else case.inferred
        assert (index in written) != (index in dead_rows), f"{case.name}: in both tables or in neither"
        if outcome == "written":
            assert index in written, f"{case.name} was dead-lettered: {dead_rows.get(index, {}).get('error')}"
            row = written[index]
            assert row["id"] == index, case.name
            for field, expected in detail.items():
                assert _same(expected, row[field]), (case.name, field, str(row[field])[:80])
            assert row["_key"] == case.key, case.name
            expected_headers = [{"key": k, "value": v} for k, v in case.headers] or None
            assert row["_headers"] == expected_headers, case.name
        else:
            assert index in dead_rows, f"{case.name} was written"
            row = dead_rows[index]
            assert row["raw"] == case.value, case.name
            assert row["error"], case.name
            assert detail is None or detail in row["error"], (case.name, row["error"][:200])
            assert (row["topic"], row["partition"]) == (name, "0")
    assert stats["written"] + stats["dead_lettered"] == len(corpus)
