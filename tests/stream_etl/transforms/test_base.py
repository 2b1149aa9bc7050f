"""run_step: a failing row-local step is bisected down to its bad rows; other errors propagate."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from stream_etl.dead_letters import Failure
from stream_etl.errors import ConfigurationError, RowsRejected, TerminalError
from stream_etl.records import LINEAGE
from stream_etl.transforms import Step, run_step


def _table(n: int) -> pa.Table:
    return pa.table({"v": pa.array(range(n), pa.int64()), LINEAGE: pa.array(range(n), pa.int32())})


class FailsOn(Step):
    """Doubles ``v``; raises ValueError if the batch holds any of ``bad`` values. Counts calls."""

    kind = "fails_on"

    def __init__(self, bad: set[int]) -> None:
        super().__init__()
        self.bad = bad
        self.calls = 0

    def apply(self, table: pa.Table) -> pa.Table:
        self.calls += 1
        found = sorted(set(table["v"].to_pylist()) & self.bad)
        if found:
            raise ValueError(f"bad values {found}")
        return table.set_column(0, "v", pc.multiply(table["v"], 2))


class Raises(Step):
    def __init__(self, error: Exception, *, row_local: bool = True) -> None:
        super().__init__()
        self.error = error
        self.row_local = row_local  # type: ignore[misc]

    def apply(self, table: pa.Table) -> pa.Table:
        raise self.error


class DropsLineage(Step):
    def apply(self, table: pa.Table) -> pa.Table:
        return table.drop_columns([LINEAGE])


def _named(step: Step, name: str = "step_1") -> Step:
    step.name = name
    return step


def test_a_step_that_succeeds_is_called_once() -> None:
    step = FailsOn(set())
    failures: list[Failure] = []

    out = run_step(_named(step), _table(100), failures)

    assert step.calls == 1
    assert failures == []
    assert out is not None
    assert out["v"].to_pylist() == [2 * i for i in range(100)]


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param({0}, id="first-row"),
        pytest.param({99}, id="last-row"),
        pytest.param({37}, id="one-row"),
        pytest.param({3, 4, 5, 6}, id="adjacent-rows"),
        pytest.param({1, 50, 51, 98}, id="scattered-rows"),
        pytest.param(set(range(0, 100, 2)), id="every-other-row"),
    ],
)
def test_bisecting_dead_letters_exactly_the_failing_rows_with_the_step_name(bad: set[int]) -> None:
    step = _named(FailsOn(bad), "validate")
    failures: list[Failure] = []

    out = run_step(step, _table(100), failures)

    assert sorted(f.row for f in failures) == sorted(bad)
    assert all(f.step == "validate" and f.error_class == "ValueError" for f in failures)
    assert all(f.message == f"bad values [{f.row}]" for f in failures)
    assert out is not None
    good = [i for i in range(100) if i not in bad]
    assert out[LINEAGE].to_pylist() == good
    assert out["v"].to_pylist() == [2 * i for i in good]


def test_bisecting_one_bad_row_costs_a_logarithmic_number_of_calls() -> None:
    step = _named(FailsOn({5000}))

    run_step(step, _table(10_000), [])

    assert step.calls < 40


def test_a_step_that_fails_on_every_row_returns_none() -> None:
    failures: list[Failure] = []

    out = run_step(_named(FailsOn(set(range(10)))), _table(10), failures)

    assert out is None
    assert [f.row for f in failures] == list(range(10))


def test_rows_rejected_dead_letters_every_row_without_bisecting() -> None:
    step = _named(Raises(RowsRejected("the batch has no column 'amount'")), "needs_amount")
    failures: list[Failure] = []

    out = run_step(step, _table(6).slice(2), failures)

    assert out is None
    assert [f.row for f in failures] == [2, 3, 4, 5]
    assert {(f.step, f.error_class, f.message) for f in failures} == {
        ("needs_amount", "RowsRejected", "the batch has no column 'amount'")
    }


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(ConfigurationError("bad setting"), id="configuration-error"),
        pytest.param(TerminalError("broken"), id="terminal-error"),
    ],
)
def test_terminal_errors_propagate(error: Exception) -> None:
    failures: list[Failure] = []

    with pytest.raises(type(error)):
        run_step(_named(Raises(error)), _table(10), failures)
    assert failures == []


def test_a_step_that_is_not_row_local_is_not_bisected() -> None:
    failures: list[Failure] = []

    with pytest.raises(ValueError, match="whole batch"):
        run_step(_named(Raises(ValueError("whole batch"), row_local=False)), _table(10), failures)
    assert failures == []


def test_an_error_on_an_empty_table_propagates() -> None:
    with pytest.raises(ValueError, match="empty"):
        run_step(_named(Raises(ValueError("empty"))), _table(0), [])


def test_a_step_that_drops_the_lineage_column_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="dropped the lineage column"):
        run_step(_named(DropsLineage(), "lossy"), _table(3), [])


def test_repr_and_describe() -> None:
    step = _named(FailsOn(set()), "check")

    assert step.describe() == "fails_on"
    assert repr(step) == "<FailsOn 'check': fails_on>"
