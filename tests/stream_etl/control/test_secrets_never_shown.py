"""A connection's password appears in no CLI output, API response, log line or run record,
and the metadata store holds it only encrypted."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from fastapi.testclient import TestClient
from sqlalchemy import text
from typer.testing import CliRunner

from stream_etl.cli import app
from stream_etl.control.api import create_app
from stream_etl.control.connections import Connections
from stream_etl.control.jobs import FINISHED, Jobs, parse_spec
from stream_etl.control.secrets import SecretBox
from stream_etl.control.store import Store
from stream_etl.control.supervisor import Supervisor
from stream_etl.control.tokens import Tokens

PASSWORD = "Pa55-w0rd-never-shown-7f3a"
runner = CliRunner()


def test_a_connection_password_is_never_shown(store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    key = Fernet.generate_key().decode()
    env = {
        "STREAM_ETL_CONTROL_DB": store.engine.url.render_as_string(hide_password=False),
        "STREAM_ETL_CONTROL_KEY": key,
    }
    seen: list[str] = []

    def cli(*args: str, input: str | None = None) -> str:  # noqa: A002
        result = runner.invoke(app, list(args), input=input, env=env)
        seen.append(result.output)
        return result.output

    cli(
        "connections",
        "add",
        "pg",
        "--kind",
        "postgres",
        "--field",
        "port=1",
        "--secret",
        "password",
        input=PASSWORD + "\n",
    )
    cli(
        "connections", "add", "kafka", "--kind", "kafka", "--field", "bootstrap_servers=127.0.0.1:1",
        "--field", "security_protocol=SASL_PLAINTEXT", "--field", "sasl_mechanism=PLAIN",
        "--field", "sasl_username=etl", "--secret", "sasl_password", input=PASSWORD + "\n",
    )  # fmt: skip
    assert "********" in cli("connections", "show", "pg")
    cli("connections", "list")
    cli("connections", "list", "--json")
    failed = cli("connections", "test", "pg", "--timeout", "2")  # port 1: fails, and says why
    assert "failed" in failed

    token, _info = Tokens(store).create("admin", "admin")
    headers = {"Authorization": f"Bearer {token}"}
    with TestClient(create_app(store, SecretBox(key))) as client:
        for response in (
            client.get("/connections", headers=headers),
            client.get("/connections/pg", headers=headers),
            client.get("/connections/kafka", headers=headers),
            client.post("/connections/pg/test", headers=headers),
        ):
            assert response.status_code == 200
            seen.append(response.text)

    # A job whose workers get the secrets in their environment, run by a supervisor, fails fast:
    # its logs, worker logs and run record must not carry them either.
    jobs = Jobs(store)
    jobs.create(
        parse_spec(
            {
                "name": "leaky",
                "topology": str(tmp_path / "missing.py"),
                "max_retries": 0,
                "connections": ["pg", "kafka"],
            }
        )
    )
    run = jobs.start("leaky")
    supervisor = Supervisor(store, Connections(store, SecretBox(key)), log_dir=tmp_path / "logs", poll_interval_s=0.1)
    deadline = time.monotonic() + 120
    while jobs.get_run(run.id).state not in FINISHED:
        assert time.monotonic() < deadline
        supervisor.tick()
        time.sleep(0.1)
    ended = jobs.get_run(run.id)
    assert ended.state == "FAILED" and ended.error and "missing.py" in ended.error
    seen.append(ended.model_dump_json())
    seen.extend(p.read_text(errors="replace") for p in (tmp_path / "logs").rglob("*") if p.is_file())
    seen.append(caplog.text)

    leaks = [s for s in seen if PASSWORD in s]
    assert not leaks, leaks[0][:500]
    assert len(seen) > 10

    with store.engine.connect() as connection:
        rows = connection.execute(text("SELECT name, config, secrets FROM connections")).all()
    assert len(rows) == 2
    for _name, config, secrets in rows:
        assert PASSWORD not in str(config) and PASSWORD not in secrets
        assert PASSWORD in SecretBox(key).decrypt(secrets).values()  # stored encrypted, not dropped
