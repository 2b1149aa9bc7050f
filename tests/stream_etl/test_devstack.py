"""`stream-etl dev`: the local broker and S3 as child processes on loopback."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest
from typer.testing import CliRunner

from connectors.kafka.admin import ensure_topic
from stream_etl.cli import app
from stream_etl.devstack import DevStack, free_port

runner = CliRunner()


@pytest.mark.timeout(120)
def test_up_status_down_cycle_binds_only_loopback(tmp_path: Path) -> None:
    state_dir = tmp_path / "dev"
    kafka_port, s3_port = free_port(), free_port()
    args = ["--state-dir", str(state_dir)]
    up = runner.invoke(
        app, ["dev", "up", *args, "--kafka-port", str(kafka_port), "--s3-port", str(s3_port), "--bucket", "mybucket"]
    )
    try:
        assert up.exit_code == 0, up.output
        assert f"export STREAM_ETL_KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:{kafka_port}" in up.output
        assert f"export STREAM_ETL_S3_ENDPOINT_URL=http://127.0.0.1:{s3_port}" in up.output
        status = json.loads(runner.invoke(app, ["dev", "status", *args]).output)
        assert status["running"] and status["kafka"]["alive"] and status["s3"]["alive"]
        assert ensure_topic(f"127.0.0.1:{kafka_port}", "probe", partitions=1)
        pids = [status["kafka"]["pid"], status["s3"]["pid"]]
        listening = {
            c.laddr.ip
            for pid in pids
            for c in psutil.Process(pid).net_connections(kind="inet")
            if c.status == psutil.CONN_LISTEN
        }
        assert listening == {"127.0.0.1"}
        anonymous = urllib.request.Request(f"http://127.0.0.1:{s3_port}/mybucket/x", data=b"x", method="PUT")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(anonymous, timeout=5)  # noqa: S310 - loopback
        refused.value.close()  # the error holds the response's socket
        assert refused.value.code == 403  # S3 requests must be signed with the dev credentials
        again = runner.invoke(app, ["dev", "up", *args, "--kafka-port", str(kafka_port), "--s3-port", str(s3_port)])
        assert again.exit_code == 0  # idempotent: finds the running stack
    finally:
        down = runner.invoke(app, ["dev", "down", *args])
    assert down.exit_code == 0 and "stopped" in down.output
    assert not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE for pid in pids)
    assert runner.invoke(app, ["dev", "status", *args]).exit_code == 1


def test_down_without_a_stack(tmp_path: Path) -> None:
    result = runner.invoke(app, ["dev", "down", "--state-dir", str(tmp_path)])
    assert result.exit_code == 0 and "nothing was running" in result.output


def test_purge_deletes_the_s3_data(tmp_path: Path) -> None:
    (tmp_path / "s3-data" / "x").mkdir(parents=True)
    stack = DevStack(tmp_path)
    assert stack.has_old_data()
    stack.down(purge=True)
    assert not stack.has_old_data()


def test_a_stale_state_file_is_not_a_running_stack(tmp_path: Path) -> None:
    (tmp_path / "stack.json").write_text(
        json.dumps({"kafka_port": 1, "s3_port": 2, "bucket": "b", "pids": {"kafka": 2**22 + os.getpid()}})
    )
    assert DevStack(tmp_path).load() is None


@pytest.mark.timeout(120)
def test_up_with_kinesis_also_starts_kinesalite_on_loopback(tmp_path: Path) -> None:
    from connectors.kinesis.admin import create_stream, kinesis_client

    args = ["--state-dir", str(tmp_path / "dev")]
    ports = [str(free_port()) for _ in range(3)]
    up = runner.invoke(
        app,
        ["dev", "up", *args, "--kafka-port", ports[0], "--s3-port", ports[1], "--kinesis", "--kinesis-port", ports[2]],
    )
    pids: list[int] = []
    try:
        assert up.exit_code == 0, up.output
        assert f"export STREAM_ETL_KINESIS_ENDPOINT_URL=http://127.0.0.1:{ports[2]}" in up.output
        status = json.loads(runner.invoke(app, ["dev", "status", *args]).output)
        assert status["kinesis"]["alive"]
        pids = [status["kafka"]["pid"], status["s3"]["pid"], status["kinesis"]["pid"]]
        listening = {
            c.laddr.ip
            for c in psutil.Process(status["kinesis"]["pid"]).net_connections(kind="inet")
            if c.status == psutil.CONN_LISTEN
        }
        assert listening == {"127.0.0.1"}
        client = kinesis_client(f"http://127.0.0.1:{ports[2]}")
        try:
            create_stream(client, "probe", 1)
            assert client.list_streams()["StreamNames"] == ["probe"]
        finally:
            client.close()
    finally:
        down = runner.invoke(app, ["dev", "down", *args])
    assert down.exit_code == 0
    assert not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE for pid in pids)
