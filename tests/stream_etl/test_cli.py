"""The command line: help everywhere, exit codes, clear errors."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from stream_etl.cli import _app_for, _command_name, app

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[2]

COMMANDS = [
    [],
    ["run"],
    ["produce"],
    ["dev"],
    ["dev", "up"],
    ["dev", "down"],
    ["dev", "status"],
    ["table"],
    ["table", "show"],
    ["preview"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "root")
def test_every_command_has_help(command: list[str]) -> None:
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0
    assert "Usage" in result.output


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.startswith("stream-etl ")


def test_python_dash_m_works() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "stream_etl", "--help"], capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert done.returncode == 0 and "run" in done.stdout


def _run(args: list[str], tmp_path: Path, **env: str) -> tuple[int, str]:
    environment = {"STREAM_ETL_DEV_DIR": str(tmp_path / "no-stack"), **env}
    result = runner.invoke(app, args, env=environment)
    return result.exit_code, result.output


def test_a_missing_topology_file_is_a_usage_error(tmp_path: Path) -> None:
    code, output = _run(["run", str(tmp_path / "nope.py")], tmp_path)
    assert code == 2
    assert "does not exist" in output


def test_a_missing_attribute_names_the_topologies_the_module_has(tmp_path: Path) -> None:
    module = tmp_path / "flows.py"
    module.write_text(
        "from stream_etl import Topology\nfrom stream_etl.testing import ListSource, MemorySink\n"
        "orders = Topology('orders')\norders.source(ListSource([])).sink(MemorySink())\n"
    )
    code, output = _run(["run", f"{module}:nothing"], tmp_path)
    assert code == 2
    assert "no attribute 'nothing'" in output and "orders" in output


def test_an_import_error_in_the_topology_says_where(tmp_path: Path) -> None:
    module = tmp_path / "broken.py"
    module.write_text("x = 1\nraise RuntimeError('boom')\n")
    code, output = _run(["run", str(module)], tmp_path)
    assert code == 2
    assert "broken.py:2" in output and "boom" in output


def test_no_broker_configured_says_how_to_get_one(tmp_path: Path) -> None:
    code, output = _run(["run", str(ROOT / "topologies" / "orders.py"), "--arg", f"table={tmp_path}/t"], tmp_path)
    assert code == 2
    assert "STREAM_ETL_KAFKA_BOOTSTRAP_SERVERS" in output and "stream-etl dev up" in output


def test_an_unreachable_broker_is_a_runtime_error(tmp_path: Path) -> None:
    code, output = _run(
        ["run", str(ROOT / "topologies" / "orders.py"), "--arg", f"table={tmp_path}/t"],
        tmp_path,
        STREAM_ETL_KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1",
        STREAM_ETL_KAFKA_OPTIONS="socket.connection.setup.timeout.ms=1000",
    )
    assert code == 1
    assert "cannot reach Kafka at 127.0.0.1:1" in output


def test_preview_with_an_unreachable_broker_says_so_and_exits_1(tmp_path: Path) -> None:
    code, output = _run(
        ["preview", str(ROOT / "topologies" / "orders.py"), "--limit", "5"],
        tmp_path,
        STREAM_ETL_KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1",
        STREAM_ETL_KAFKA_OPTIONS="socket.connection.setup.timeout.ms=1000",
    )
    assert code == 1
    assert "cannot reach Kafka at 127.0.0.1:1" in output and "stream-etl dev up" in output


def test_preview_with_a_bad_limit_is_a_usage_error(tmp_path: Path) -> None:
    code, output = _run(["preview", str(ROOT / "topologies" / "orders.py"), "--limit", "0"], tmp_path)
    assert code == 2


def test_a_bad_job_argument_is_a_usage_error(tmp_path: Path) -> None:
    code, output = _run(["run", str(ROOT / "topologies" / "orders.py"), "--arg", "no-equals-sign"], tmp_path)
    assert code == 2
    assert "key=value" in output


def test_a_bad_app_id_is_a_usage_error(tmp_path: Path) -> None:
    code, output = _run(["run", str(ROOT / "topologies" / "orders.py"), "--app-id", "no spaces/please"], tmp_path)
    assert code == 2
    assert "app id" in output


def test_table_show_of_a_missing_table(tmp_path: Path) -> None:
    code, output = _run(["table", "show", str(tmp_path / "missing")], tmp_path)
    assert code == 2
    assert "no Delta table" in output


def test_dev_status_without_a_stack_exits_1(tmp_path: Path) -> None:
    code, output = _run(["dev", "status", "--state-dir", str(tmp_path)], tmp_path)
    assert code == 1
    assert '"running": false' in output


def test_dev_up_on_a_taken_port_says_which_and_what_to_do(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, output = _run(["dev", "up", "--state-dir", str(tmp_path), "--kafka-port", str(port)], tmp_path)
    assert code == 1
    assert f"port {port} on 127.0.0.1 is taken" in output and "--kafka-port" in output


SECRETS = {
    "STREAM_ETL_S3_SECRET_ACCESS_KEY": "s3-secret-in-env",
    "STREAM_ETL_KAFKA_SASL_PASSWORD": "sasl-secret-in-env",
    "STREAM_ETL_KAFKA_SSL_KEY_PASSWORD": "key-secret-in-env",
}


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "root")
def test_help_never_shows_secrets_from_the_environment(command: list[str]) -> None:
    result = runner.invoke(app, [*command, "--help"], env=SECRETS)
    assert result.exit_code == 0
    assert not any(secret in result.output for secret in SECRETS.values())


def test_a_config_file_others_can_read_is_refused_with_the_chmod_to_run(tmp_path: Path) -> None:
    config = tmp_path / "etl.toml"
    config.write_text('kafka_sasl_password = "sasl-secret-in-file"\n')
    config.chmod(0o644)

    code, output = _run(["--config", str(config), "run", "topologies/orders.py"], tmp_path)

    assert code == 2
    assert f"chmod 600 {config}" in output.replace("\n", "")
    assert "sasl-secret-in-file" not in output


@pytest.mark.slow  # two runs that each wait out the 15 s broker connect timeout
def test_a_config_file_supplies_settings_under_the_environment(tmp_path: Path) -> None:
    config = tmp_path / "etl.env"
    config.write_text(
        "STREAM_ETL_KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:1\n"
        "STREAM_ETL_KAFKA_OPTIONS=socket.connection.setup.timeout.ms=1000\n"
        "STREAM_ETL_KAFKA_SASL_PASSWORD=sasl-secret\n"
    )
    config.chmod(0o600)
    run = ["--config", str(config), "run", str(ROOT / "topologies" / "orders.py"), "--arg", f"table={tmp_path}/t"]

    code, output = _run(run, tmp_path)
    assert code == 1 and "cannot reach Kafka at 127.0.0.1:1" in output  # the file's broker
    assert "sasl-secret" not in output

    code, output = _run(run, tmp_path, STREAM_ETL_KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:2")
    assert code == 1 and "cannot reach Kafka at 127.0.0.1:2" in output  # the environment wins over the file
    assert "sasl-secret" not in output


def test_run_loads_a_plain_topology_without_duckdb_or_rich() -> None:
    """What `run` imports before the source subscribes: DuckDB (~65 ms, ~35 MB) only for SQL the
    plain parser leaves to it, rich only once something is printed."""
    code = (
        "import sys, gc\n"
        "import stream_etl.cli, stream_etl.runloop\n"
        "from stream_etl.loader import load_topology\n"
        "load_topology('topologies/orders.py')\n"
        "assert gc.isenabled(), 'importing stream_etl left the garbage collector off'\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'duckdb', 'rich'}))\n"
    )
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root)
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("argv", "command"),
    [
        (["run", "t.py"], "run"),
        (["--log-level", "DEBUG", "run", "t.py"], "run"),
        (["--log-level=DEBUG", "--config", "c.toml", "run"], "run"),
        (["dev", "up"], "dev"),
        (["--help"], None),
        (["--version", "run"], None),
        ([], None),
    ],
)
def test_the_command_is_found_after_the_apps_own_options(argv: list[str], command: str | None) -> None:
    assert _command_name(argv) == command


def test_run_gets_an_app_with_only_run_and_the_same_options() -> None:
    """`run` skips building the other ~80 commands (~0.15 s of a worker's start-up)."""
    slim = _app_for(["--log-level", "INFO", "run", "topologies/orders.py"])
    assert slim is not app and _app_for(["dev", "status"]) is app
    for args in (["run", "--help"], ["--help"]):
        assert runner.invoke(slim, args).exit_code == 0
    assert runner.invoke(slim, ["run", "--help"]).output == runner.invoke(app, ["run", "--help"]).output
    assert "catalog" not in runner.invoke(slim, ["--help"]).output
