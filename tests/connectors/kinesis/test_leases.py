"""Shard leases: the division rules, and both stores' compare-and-swap on real storage."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from connectors.kinesis.leases import FileLeaseStore, LeaseDoc, Liveness, S3LeaseStore, open_lease_store, plan
from stream_etl.errors import ConfigurationError
from tests.services import Services

FOUR = {f"s{i}": () for i in range(4)}


def _owners(doc: LeaseDoc) -> dict[str | None, set[str]]:
    found: dict[str | None, set[str]] = {}
    for shard, lease in doc.leases.items():
        found.setdefault(lease["owner"], set()).add(shard)
    return found


def test_a_lone_worker_takes_every_eligible_shard() -> None:
    doc = plan(LeaseDoc(), FOUR, me="a", live={"a"})
    assert _owners(doc) == {"a": set(FOUR)}
    assert doc.workers == {"a": 1}


def test_a_second_worker_asks_and_the_first_hands_over_half() -> None:
    doc = plan(LeaseDoc(), FOUR, me="a", live={"a"})
    doc = plan(doc, FOUR, me="b", live={"a", "b"})  # nothing free: b asks the most loaded
    wanted = [s for s, lease in doc.leases.items() if lease["wanted_by"] == "b"]
    assert len(wanted) == 1 and _owners(doc) == {"a": set(FOUR)}
    for _ in range(4):  # a releases what is asked of it (after committing), b takes it
        handoff = {s for s, lease in doc.leases.items() if lease["owner"] == "a" and lease["wanted_by"]}
        doc = plan(doc, FOUR, me="a", live={"a", "b"}, release=handoff)
        assert not any(doc.leases[s]["owner"] == "a" for s in handoff)
        doc = plan(doc, FOUR, me="b", live={"a", "b"})
    assert {k: len(v) for k, v in _owners(doc).items()} == {"a": 2, "b": 2}


def test_a_dead_workers_shards_go_to_the_survivor() -> None:
    doc = LeaseDoc(
        workers={"a": 5, "b": 9},
        leases={s: {"owner": "a" if s < "s2" else "b", "finished": False, "wanted_by": None} for s in FOUR},
    )
    doc = plan(doc, FOUR, me="b", live={"b"})
    assert _owners(doc) == {"b": set(FOUR)}
    assert "a" not in doc.workers


def test_children_wait_until_every_parent_is_finished() -> None:
    lineage = {"p1": (), "p2": (), "c": ("p1", "p2")}
    doc = plan(LeaseDoc(), lineage, me="a", live={"a"})
    assert doc.owned_by("a") == {"p1", "p2"}
    doc = plan(doc, lineage, me="a", live={"a"}, finished=["p1"])
    assert doc.owned_by("a") == {"p2"} and doc.leases["p1"]["finished"]
    doc = plan(doc, lineage, me="a", live={"a"}, finished=["p2"])
    assert doc.owned_by("a") == {"c"}
    # Finished shards gone from the stream (past retention) leave the table.
    doc = plan(doc, {"c": ("p1", "p2")}, me="a", live={"a"})
    assert set(doc.leases) == {"c"} and doc.owned_by("a") == {"c"}


def test_a_parent_gone_from_the_stream_unread_does_not_block_its_children() -> None:
    doc = plan(LeaseDoc(), {"p": ()}, me="a", live={"a"})
    doc = plan(doc, {"c": ("p",)}, me="b", live={"a", "b"})  # p expired before it was finished
    assert doc.owned_by("b") == {"c"}


def test_a_worker_with_an_older_shard_list_keeps_the_newer_shards() -> None:
    doc = plan(LeaseDoc(), {"p": (), "c1": ("p",), "c2": ("p",)}, me="a", live={"a"}, finished=["p"])
    assert doc.owned_by("a") == {"c1", "c2"}
    stale = plan(doc, {"p": ()}, me="b", live={"a", "b"})  # b listed before the split
    assert stale.owned_by("a") == {"c1", "c2"} and stale.owned_by("b") == set()


def test_liveness_is_judged_on_the_observers_clock() -> None:
    liveness = Liveness("me", lease_duration_s=10)
    doc = LeaseDoc(workers={"other": 3})
    assert liveness.observe(doc, now=100.0) == {"me", "other"}
    assert liveness.observe(doc, now=109.0) == {"me", "other"}
    assert liveness.observe(doc, now=111.0) == {"me"}  # its counter did not move for 10 s
    assert not liveness.proven("other")  # seen once: maybe dead already
    doc.workers["other"] = 4
    assert liveness.observe(doc, now=112.0) == {"me", "other"}
    assert liveness.proven("other") and liveness.proven("me")


def _compare_and_swap(store_a: object, store_b: object) -> None:
    from connectors.kinesis.leases import LeaseStore

    assert isinstance(store_a, LeaseStore) and isinstance(store_b, LeaseStore)
    first, second = store_a.read(), store_b.read()
    assert first.version == second.version == 0
    first.workers["a"] = 1
    second.workers["b"] = 1
    assert store_a.write(first)
    assert not store_b.write(second)  # based on a version that is gone
    again = store_b.read()
    assert again.version == 1 and again.workers == {"a": 1}
    again.workers["b"] = 1
    assert store_b.write(again)
    assert store_a.read().workers == {"a": 1, "b": 1}


def test_file_store_swaps_atomically(tmp_path: Path) -> None:
    _compare_and_swap(FileLeaseStore(tmp_path, "job", "s"), FileLeaseStore(tmp_path, "job", "s"))


def test_file_store_loses_no_update_under_contention(tmp_path: Path) -> None:
    def bump(worker: str) -> None:
        store = FileLeaseStore(tmp_path, "job", "s")
        for _ in range(50):
            while True:
                doc = store.read()
                doc.workers[worker] = doc.workers.get(worker, 0) + 1
                if store.write(doc):
                    break

    threads = [threading.Thread(target=bump, args=(w,)) for w in "abc"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    doc = FileLeaseStore(tmp_path, "job", "s").read()
    assert doc.workers == {"a": 50, "b": 50, "c": 50} and doc.version == 150


def test_s3_store_swaps_atomically_on_real_s3(services: Services, unique: str) -> None:
    uri = f"s3://{services.bucket}/{unique}/leases"
    a = S3LeaseStore(uri, "job", "s", services.settings())
    b = S3LeaseStore(uri, "job", "s", services.settings())
    try:
        _compare_and_swap(a, b)
        for _ in range(25):  # old versions are pruned as new ones land
            doc = a.read()
            doc.workers["a"] += 1
            assert a.write(doc)
        assert a.read().workers["a"] == 26
        assert len(a._versions()) <= 3 * S3LeaseStore.KEEP
    finally:
        a.close()
        b.close()


def test_lease_uris_are_checked(tmp_path: Path, services: Services) -> None:
    assert isinstance(open_lease_store(str(tmp_path), "job", "s", services.settings()), FileLeaseStore)
    with pytest.raises(ConfigurationError, match="s3://bucket/prefix or a local directory"):
        open_lease_store("gs://x/y", "job", "s", services.settings())
