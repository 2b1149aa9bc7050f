"""load_topology: ``path.py[:attr]`` or ``package.module[:attr]``, with job arguments."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from stream_etl import Topology, job_args, loader
from stream_etl.errors import TopologyLoadError
from stream_etl.loader import load_topology

TOPOLOGY_MODULE = """
from stream_etl import Topology, job_args
from stream_etl.testing import ListSource, MemorySink

args = job_args(name="default_name", partitions="1")
topology = Topology(args["name"])
topology.source(ListSource([], partitions=int(args["partitions"]))).sink(MemorySink("out"))
"""


#: Modules these tests create (loaded files are registered as stream_etl_topology_<stem>).
OUR_MODULES = ("stream_etl_topology_", "loader_test_pkg", "shared_names_for_loader_test")


@pytest.fixture(autouse=True)
def isolated_imports(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Loading adds to sys.path, sys.modules and the job arguments: undo all three."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setattr(loader, "_ARGS", {})
    yield
    for name in [n for n in sys.modules if n.startswith(OUR_MODULES)]:
        del sys.modules[name]


def _write(directory: Path, name: str, body: str) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(body))
    return path


def test_loads_the_topology_attribute_of_a_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "orders.py", TOPOLOGY_MODULE)

    topology = load_topology(str(path))

    assert isinstance(topology, Topology)
    assert topology.name == "default_name"
    assert [n.name for n in topology.sink_nodes] == ["out"]


def test_loads_a_named_attribute_of_a_file(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "two.py",
        """
        from stream_etl import Topology
        first = Topology("first")
        second = Topology("second")
        """,
    )

    assert load_topology(f"{path}:second").name == "second"


def test_a_file_can_import_its_neighbours(tmp_path: Path) -> None:
    _write(tmp_path, "shared_names_for_loader_test.py", "NAME = 'from_neighbour'\n")
    path = _write(
        tmp_path,
        "uses_neighbour.py",
        """
        from shared_names_for_loader_test import NAME
        from stream_etl import Topology
        topology = Topology(NAME)
        """,
    )

    assert load_topology(str(path)).name == "from_neighbour"


def test_loads_a_module_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(tmp_path, "loader_test_pkg/__init__.py", "")
    _write(tmp_path, "loader_test_pkg/flows.py", TOPOLOGY_MODULE + "\nother = Topology('other')\n")
    monkeypatch.syspath_prepend(str(tmp_path))

    assert load_topology("loader_test_pkg.flows").name == "default_name"
    assert load_topology("loader_test_pkg.flows:other").name == "other"


def test_calls_a_factory(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "factory.py",
        """
        from stream_etl import Topology
        def make():
            return Topology("made")
        """,
    )

    assert load_topology(f"{path}:make").name == "made"


def test_job_args_are_visible_while_the_module_is_imported(tmp_path: Path) -> None:
    path = _write(tmp_path, "with_args.py", TOPOLOGY_MODULE)

    topology = load_topology(str(path), args={"name": "from_cli", "partitions": "3"})

    assert topology.name == "from_cli"
    source = topology.source_node.source
    assert source is not None
    assert source.describe() == "list of 0 records in 3 partition(s)"


def test_job_args_of_one_load_do_not_leak_into_the_next(tmp_path: Path) -> None:
    path = _write(tmp_path, "with_args.py", TOPOLOGY_MODULE)
    load_topology(str(path), args={"name": "first_run"})

    assert load_topology(str(path)).name == "default_name"


def test_job_args_without_a_run_are_the_defaults() -> None:
    assert job_args(topic="orders", table="s3://lake/orders") == {"topic": "orders", "table": "s3://lake/orders"}


def test_a_missing_file_names_the_working_directory(tmp_path: Path) -> None:
    with pytest.raises(TopologyLoadError, match=r"topology file .*nope\.py does not exist \(the working directory is"):
        load_topology(str(tmp_path / "nope.py"))


def test_a_missing_module_suggests_a_file_path() -> None:
    with pytest.raises(TopologyLoadError, match="no module 'no_such_topology_module'; give a file path"):
        load_topology("no_such_topology_module")


def test_a_missing_attribute_lists_the_topologies_the_module_defines(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "named.py",
        """
        from stream_etl import Topology
        orders = Topology("orders")
        refunds = Topology("refunds")
        helper = 42
        """,
    )

    with pytest.raises(TopologyLoadError) as raised:
        load_topology(str(path))

    assert str(raised.value) == f"{path} has no attribute 'topology'; it defines orders, refunds: use {path}:orders"


def test_a_missing_attribute_in_a_module_without_topologies(tmp_path: Path) -> None:
    path = _write(tmp_path, "empty.py", "x = 1\n")

    with pytest.raises(TopologyLoadError) as raised:
        load_topology(f"{path}:flow")

    assert str(raised.value) == f"{path} has no attribute 'flow'"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        pytest.param("topology = 42\n", "is a int, not a stream_etl.Topology", id="not-a-topology"),
        pytest.param(
            "def topology():\n    return 'x'\n", "is a str, not a stream_etl.Topology", id="factory-returns-other"
        ),
    ],
)
def test_an_attribute_that_is_not_a_topology(tmp_path: Path, body: str, message: str) -> None:
    path = _write(tmp_path, "wrong.py", body)

    with pytest.raises(TopologyLoadError, match=message):
        load_topology(str(path))


def test_an_error_while_importing_names_the_file_and_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "broken.py", "x = 1\ny = 1 / 0\n")

    with pytest.raises(
        TopologyLoadError, match=r"importing .*broken\.py failed at .*broken\.py:2: ZeroDivisionError"
    ) as raised:
        load_topology(str(path))

    assert isinstance(raised.value.__cause__, ZeroDivisionError)


def test_a_missing_import_inside_the_module_is_reported_as_an_import_failure(tmp_path: Path) -> None:
    path = _write(tmp_path, "bad_import.py", "import no_such_dependency_xyz\n")

    with pytest.raises(TopologyLoadError, match="ModuleNotFoundError: No module named 'no_such_dependency_xyz'"):
        load_topology(str(path))
