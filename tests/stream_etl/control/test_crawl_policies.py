"""Schema-change and recrawl policies, over local folders (the same code path as S3 prefixes)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow as pa
import pytest
from pydantic import ValidationError

from stream_etl.control.catalog import Catalog
from stream_etl.control.crawl_targets import Target
from stream_etl.control.crawlers import Crawlers, CrawlerSpec
from stream_etl.control.store import Store


def _file(path: Path, rows: list[dict[str, object]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _crawler(store: Store, root: Path, **policy: str) -> Crawlers:
    crawlers = Crawlers(store, environ={})
    crawlers.create(CrawlerSpec(name="c", database="lake", targets=[Target(kind="path", path=str(root))], **policy))
    return crawlers


def _day(root: Path, day: str, **extra: object) -> None:
    _file(root / f"dt={day}" / "part-0.json", [{"id": 1, "name": "a", **extra}, {"id": 2, "name": "b", **extra}])


def test_update_records_a_new_schema_version(store: Store, tmp_path: Path) -> None:
    root = tmp_path / "events"
    _day(root, "2026-11-20")
    crawlers = _crawler(store, root, update_behavior="update")
    crawlers.run("c")
    _file(root / "dt=2026-11-20" / "part-0.json", [{"id": 3, "name": "c", "coupon": "X"}])

    run = crawlers.run("c")

    assert run.changes["tables_updated"] == [
        {"table": "events", "version": 2, "diff": {"added": ["coupon"], "removed": [], "changed": []}}
    ]
    catalog = Catalog(store)
    assert catalog.get_table("lake", "events").arrow_schema().names == ["id", "name", "coupon", "dt"]
    assert [v.version for v in catalog.versions("lake", "events")] == [1, 2]
    assert catalog.versions("lake", "events")[1].source == "crawler:c"


def test_log_keeps_the_table_and_logs_the_change_in_the_run(store: Store, tmp_path: Path) -> None:
    root = tmp_path / "events"
    _day(root, "2026-11-20")
    crawlers = _crawler(store, root, update_behavior="log", delete_behavior="log")
    crawlers.run("c")
    _day(root, "2026-11-21", coupon="X")

    run = crawlers.run("c")

    assert run.state == "SUCCEEDED", run.error
    assert run.changes["schema_changes_logged"] == [
        {"table": "events", "diff": {"added": ["coupon"], "removed": [], "changed": []}}
    ]
    assert run.changes["tables_updated"] == []
    assert run.changes["partitions_added"] == [
        {"table": "events", "values": ["2026-11-21"], "location": f"{root}/dt=2026-11-21"}
    ]
    table = Catalog(store).get_table("lake", "events")
    assert table.schema_version == 1
    assert table.arrow_schema().names == ["id", "name", "dt"]


def test_deprecate_marks_removed_tables_and_columns_and_unmarks_them_when_back(store: Store, tmp_path: Path) -> None:
    _day(tmp_path / "a", "2026-11-20", extra=1)
    _file(tmp_path / "b" / "x.json", [{"sku": "k", "qty": 3}])  # unlike a: its own table (like a: one table)
    _file(tmp_path / "c" / "x.json", [{"url": "/", "ms": 3}])
    crawlers = _crawler(store, tmp_path, delete_behavior="deprecate")
    first = crawlers.run("c")
    assert sorted(t["table"] for t in first.changes["tables_created"]) == ["a", "b", "c"]
    _day(tmp_path / "a", "2026-11-20")  # column 'extra' gone
    shutil.rmtree(tmp_path / "c")  # table c gone

    run = crawlers.run("c")

    assert run.changes["tables_deprecated"] == ["c"]
    assert run.changes["columns_deprecated"] == [{"table": "a", "columns": ["extra"]}]
    catalog = Catalog(store)
    c = catalog.get_table("lake", "c")
    assert c.parameters["deprecated"] is True
    assert c.parameters["deprecated_by_run"] == run.id
    a = catalog.get_table("lake", "a")
    assert a.parameters["deprecated_columns"] == ["extra"]
    assert "extra" in a.arrow_schema().names  # kept: older files still hold it
    assert not catalog.get_table("lake", "b").parameters.get("deprecated")

    _file(tmp_path / "c" / "x.json", [{"url": "/", "ms": 3}])
    _day(tmp_path / "a", "2026-11-20", extra=1)
    again = crawlers.run("c")

    assert again.changes["tables_deprecated"] == []
    assert catalog.get_table("lake", "c").parameters["deprecated"] is False
    assert catalog.get_table("lake", "a").parameters["deprecated_columns"] == []


def test_exclusions_and_hidden_files_are_not_read(store: Store, tmp_path: Path) -> None:
    _day(tmp_path / "t", "2026-11-20")
    _file(tmp_path / "t" / "dt=2026-11-21" / "part-0.json.tmp", [{"other": 1}])
    _file(tmp_path / "t" / ".staging" / "x.json", [{"other": 1}])
    crawlers = Crawlers(store, environ={})
    target = Target(kind="path", path=str(tmp_path / "t"), exclusions=["**/*.tmp"])
    crawlers.create(CrawlerSpec(name="c", database="lake", targets=[target]))

    run = crawlers.run("c")

    assert run.changes["targets"][0]["sampled"] == 1
    assert [p.values for p in Catalog(store).list_partitions("lake", "t")] == [["2026-11-20"]]


def test_delete_drops_removed_tables_and_columns(store: Store, tmp_path: Path) -> None:
    _file(tmp_path / "a" / "x.json", [{"id": 1, "gone": True}])
    _file(tmp_path / "b" / "x.json", [{"url": "/", "ms": 3}])
    crawlers = _crawler(store, tmp_path, delete_behavior="delete")
    crawlers.run("c")
    _file(tmp_path / "a" / "x.json", [{"id": 1}])
    shutil.rmtree(tmp_path / "b")

    run = crawlers.run("c")

    assert run.changes["tables_deleted"] == ["b"]
    assert run.changes["tables_updated"][0]["diff"]["removed"] == ["gone"]
    catalog = Catalog(store)
    assert [t.name for t in catalog.list_tables("lake")] == ["a"]
    assert catalog.get_table("lake", "a").arrow_schema() == pa.schema([("id", pa.int64())])


@pytest.mark.parametrize("behavior", ["deprecate", "delete", "log"])
def test_a_partition_folder_gone_follows_the_delete_behavior(store: Store, tmp_path: Path, behavior: str) -> None:
    root = tmp_path / "events"
    _day(root, "2026-11-20")
    _day(root, "2026-11-21")
    update = "log" if behavior == "log" else "update"
    crawlers = _crawler(store, root, delete_behavior=behavior, update_behavior=update)
    crawlers.run("c")
    shutil.rmtree(root / "dt=2026-11-20")

    run = crawlers.run("c")

    gone = {"table": "events", "values": ["2026-11-20"], "location": f"{root}/dt=2026-11-20"}
    key = {"deprecate": "partitions_deprecated", "delete": "partitions_deleted", "log": "partitions_missing"}[behavior]
    assert run.changes[key] == [gone]
    partitions = {tuple(p.values): p for p in Catalog(store).list_partitions("lake", "events")}
    if behavior == "delete":
        assert list(partitions) == [("2026-11-21",)]
    else:
        assert partitions[("2026-11-20",)].parameters.get("deprecated") is (True if behavior == "deprecate" else None)
    if behavior == "deprecate":
        _day(root, "2026-11-20")
        crawlers.run("c")
        assert not Catalog(store).list_partitions("lake", "events")[0].parameters.get("deprecated")


def test_new_folders_only_reads_only_new_partition_folders(store: Store, tmp_path: Path) -> None:
    root = tmp_path / "events"
    _day(root, "2026-11-20")
    crawlers = _crawler(store, root, recrawl_policy="new_folders_only", update_behavior="log", delete_behavior="log")
    assert crawlers.run("c").changes["targets"][0]["sampled"] == 1
    _day(root, "2026-11-20", coupon="X")  # an old folder changed: not read again
    _day(root, "2026-11-21")

    run = crawlers.run("c")

    assert run.state == "SUCCEEDED", run.error
    assert run.changes["targets"][0]["sampled"] == 1
    assert run.changes["partitions_added"] == [
        {"table": "events", "values": ["2026-11-21"], "location": f"{root}/dt=2026-11-21"}
    ]
    assert run.changes["schema_changes_logged"] == []
    assert [p.values for p in Catalog(store).list_partitions("lake", "events")] == [["2026-11-20"], ["2026-11-21"]]


def test_a_location_registered_in_another_database_gets_its_own_table_once(store: Store, tmp_path: Path) -> None:
    _file(tmp_path / "t" / "x.json", [{"id": 1}])
    catalog = Catalog(store)
    catalog.create_database("sinks")
    catalog.create_table(
        "sinks", "t", location=str(tmp_path / "t"), format="json", schema=pa.schema([("id", pa.int64())])
    )
    crawlers = _crawler(store, tmp_path / "t")

    assert crawlers.run("c").changes["counts"]["tables_created"] == 1
    again = crawlers.run("c")

    assert again.state == "SUCCEEDED", again.error
    assert again.changes["counts"]["tables_created"] == 0
    assert [t.name for t in catalog.list_tables("lake")] == ["t"]


def test_new_folders_only_needs_log_policies() -> None:
    with pytest.raises(ValidationError, match="new_folders_only"):
        CrawlerSpec(name="c", database="d", targets=[Target(kind="path", path="/x")], recrawl_policy="new_folders_only")


def test_a_delta_folder_is_one_table_with_its_log_schema(store: Store, tmp_path: Path) -> None:
    from deltalake import write_deltalake

    write_deltalake(str(tmp_path / "orders"), pa.table({"id": [1, 2], "day": ["a", "b"]}), partition_by=["day"])
    crawlers = _crawler(store, tmp_path)

    run = crawlers.run("c")

    assert run.state == "SUCCEEDED", run.error
    table = Catalog(store).get_table("lake", "orders")
    assert (table.format, table.partition_keys) == ("delta", ["day"])
    assert table.arrow_schema().names == ["id", "day"]
    assert table.location == str(tmp_path / "orders")


def test_a_custom_grok_classifier_wins_over_the_built_in_ones(store: Store, tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "app.log").write_text(
        "2026-11-21T10:00:00Z INFO 10.0.0.1 GET /a 200 12\n2026-11-21T10:00:01Z WARN 10.0.0.2 POST /b 500 7\n"
    )
    crawlers = Crawlers(store, environ={})
    crawlers.create_classifier(
        "weblog",
        "grok",
        {
            "pattern": "%{TIMESTAMP_ISO8601:ts} %{LOGLEVEL:level} %{IP:client} %{WORD:method} %{URIPATH:path} "
            "%{INT:status} %{MS:ms}",
            "custom_patterns": "MS %{NUMBER}",
            "classification": "weblog",
        },
    )
    crawlers.create(
        CrawlerSpec(
            name="c",
            database="lake",
            targets=[Target(kind="path", path=str(tmp_path / "logs"))],
            classifiers=["weblog"],
        )
    )

    run = crawlers.run("c")

    assert run.state == "SUCCEEDED", run.error
    table = Catalog(store).get_table("lake", "logs")
    assert table.classification == "weblog"
    assert table.arrow_schema() == pa.schema(
        [
            ("ts", pa.string()),
            ("level", pa.string()),
            ("client", pa.string()),
            ("method", pa.string()),
            ("path", pa.string()),
            ("status", pa.int64()),
            ("ms", pa.string()),
        ]
    )


def test_a_json_path_classifier_reads_records_inside_pretty_printed_documents(store: Store, tmp_path: Path) -> None:
    (tmp_path / "batches").mkdir()
    document = {"batch": 1, "records": [{"sku": "a", "qty": 1}, {"sku": "b", "qty": 2.5}]}
    (tmp_path / "batches" / "b1.json").write_text(json.dumps(document, indent=2))
    (tmp_path / "arrays").mkdir()
    (tmp_path / "arrays" / "a.json").write_text(json.dumps([{"x": 1}, {"x": 2, "y": "z"}], indent=2))
    crawlers = Crawlers(store, environ={})
    crawlers.create_classifier("records", "json_path", {"json_path": "$.records[*]"})
    targets = [Target(kind="path", path=str(tmp_path / name)) for name in ("batches", "arrays")]
    crawlers.create(CrawlerSpec(name="c", database="lake", targets=targets, classifiers=["records"]))

    run = crawlers.run("c")

    assert run.state == "SUCCEEDED", run.error
    catalog = Catalog(store)
    batches = catalog.get_table("lake", "batches")
    assert batches.classification == "records"
    assert batches.arrow_schema() == pa.schema([("sku", pa.string()), ("qty", pa.float64())])
    arrays = catalog.get_table("lake", "arrays")
    assert arrays.classification == "json"
    assert arrays.arrow_schema() == pa.schema([("x", pa.int64()), ("y", pa.string())])
