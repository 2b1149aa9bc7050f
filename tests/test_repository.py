"""Files at the root that users rely on: docker-compose.yml, the README's example, the Makefile."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent


def test_docker_compose_is_valid_and_binds_loopback() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"kafka", "minio", "worker"} <= set(services)
    assert "broker,controller" in services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"]  # KRaft, no ZooKeeper
    for name, service in services.items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"
        for dependency in service.get("depends_on", {}):
            assert dependency in services
    worker = services["worker"]
    assert worker["command"][0] == "run" and (ROOT / worker["command"][1]).is_file()
    assert worker["environment"]["STREAM_ETL_KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert (ROOT / "Dockerfile").is_file()


def test_readme_starts_with_the_two_commands() -> None:
    text = (ROOT / "README.md").read_text()
    first_block = re.search(r"```sh\n(.*?)```", text, re.S)
    assert first_block is not None
    commands = [line.split("#")[0].strip() for line in first_block.group(1).splitlines() if line.strip()]
    assert commands == ["make demo", "make test"]


def test_readme_testing_example_runs() -> None:
    text = (ROOT / "README.md").read_text()
    example = text.split("## Testing your topology", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    exec(compile(example, "README.md", "exec"), {"__name__": "readme"})  # noqa: S102 - our own README


def test_ci_runs_make_test() -> None:
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_make_targets_exist() -> None:
    makefile = (ROOT / "Makefile").read_text()
    for target in ("demo", "test", "bench"):
        assert re.search(rf"^{target}:", makefile, re.M), target


@pytest.mark.parametrize("number", range(6))
def test_formats_doc_examples_run(number: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = (ROOT / "docs" / "FORMATS.md").read_text()
    examples = re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)
    assert len(examples) == 6, "update the count when adding examples to docs/FORMATS.md"
    monkeypatch.chdir(tmp_path)
    exec(compile(examples[number], f"docs/FORMATS.md example {number}", "exec"), {"__name__": "doc"})  # noqa: S102
