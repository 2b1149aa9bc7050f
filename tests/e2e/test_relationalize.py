"""relationalize: orders and their items into two Delta tables, SIGKILLed, each row exactly once."""

from __future__ import annotations

import hashlib
import random
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from connectors.kafka.admin import produce
from stream_etl.samples import malformed, order
from tests.e2e.workers import ROOT, read_table, run_worker, start_worker, table_version
from tests.services import Services

TOPOLOGY = str(ROOT / "topologies" / "orders_items.py")


def shop_order(i: int) -> dict[str, Any]:
    """Sample order ``i`` with 0 to 3 line items (unicode names included)."""
    base = order(i)
    return {
        "id": i,
        "customer": {"name": f"Zoë {base['user']}", "email": f"{base['user']}@example.org"},
        "ts": base["ts"],
        "items": [
            {"sku": f"sku-{(i + k) % 97}", "qty": k + 1, "price": round(base["amount"] + k, 2)} for k in range(i % 4)
        ],
    }


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_relationalize_writes_parent_and_child_tables_exactly_once_across_sigkill(
    services: Services, topic: Callable[..., str], unique: str, tmp_path: Path
) -> None:
    total, bad_every = 20_000, 499
    bad = {i for i in range(total) if i % bad_every == bad_every - 1}
    name = topic(partitions=3)
    produce(
        services.kafka_bootstrap,
        name,
        (malformed(i) if i in bad else orjson.dumps(shop_order(i)) for i in range(total)),
    )
    base = f"s3://{services.bucket}/{unique}"
    args = {"topic": name, "base": base, "batch_records": "1500"}
    rng = random.Random(11)
    kills = 0
    for attempt in range(10):
        if kills >= 3:
            break
        before = table_version(f"{base}/orders", services)
        process = start_worker(
            services,
            app_id=unique,
            args=args,
            log=tmp_path / f"w{attempt}.log",
            topology=TOPOLOGY,
            until_caught_up=True,
        )
        deadline = time.monotonic() + 90
        while table_version(f"{base}/orders", services) <= before and process.poll() is None:
            assert time.monotonic() < deadline, (tmp_path / f"w{attempt}.log").read_text()[-3000:]
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.3))
        if process.poll() is not None:
            break
        process.send_signal(signal.SIGKILL)
        process.wait()
        kills += 1
    assert kills >= 2, "the stream was consumed before enough kills landed"
    run_worker(services, app_id=unique, args=args, log=tmp_path / "final.log", topology=TOPOLOGY)

    good = [i for i in range(total) if i not in bad]
    orders = read_table(f"{base}/orders", services)
    assert orders is not None
    ids = orders["id"].to_pylist()
    assert len(ids) == len(set(ids)), f"{len(ids) - len(set(ids))} duplicate orders"
    assert sorted(ids) == good
    assert "items" not in orders.column_names
    by_id = {row["id"]: row for row in orders.to_pylist()}
    sample = shop_order(good[7])
    assert by_id[good[7]]["customer_name"] == sample["customer"]["name"]
    digest = hashlib.sha256(f"orders-demo{sample['customer']['email']}".encode()).hexdigest()
    assert by_id[good[7]]["customer_email"] == digest
    assert by_id[good[7]]["year"] == int(sample["ts"][:4])

    items = read_table(f"{base}/order_items", services)
    assert items is not None
    keys = list(zip(items["id"].to_pylist(), items["index"].to_pylist(), strict=True))
    assert len(keys) == len(set(keys)), f"{len(keys) - len(set(keys))} duplicate items"
    expected = {
        (i, k): (item["sku"], item["qty"], item["price"]) for i in good for k, item in enumerate(shop_order(i)["items"])
    }
    got = {
        (row["id"], row["index"]): (row["item_sku"], row["item_qty"], row["item_price"]) for row in items.to_pylist()
    }
    assert got == expected

    dead = read_table(f"{base}/dead_letters", services)
    assert dead is not None
    assert sorted(dead["raw"].to_pylist()) == sorted(malformed(i) for i in bad)
