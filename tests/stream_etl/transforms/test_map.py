"""map: the per-record escape hatch; a failing record is dead-lettered, None filters."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pytest

from stream_etl.errors import ConfigurationError
from stream_etl.records import LINEAGE
from stream_etl.transforms import Map
from tests.stream_etl.transforms.helpers import assert_table, lineage, run, table

DATA = table({"name": ["ada", None, "ærø", "bob", "x"], "n": [1, 2, 0, 4, 5]})


def per_record(record: dict[str, Any]) -> dict[str, Any] | None:
    if record["n"] == 4:
        return None
    return {"label": f"{record['name']}:{10 // record['n']}"}


def test_map_applies_a_function_per_record_filters_none_and_dead_letters_failures() -> None:
    out, failures = run(Map(per_record), DATA, "label")

    assert [(f.row, f.step, f.error_class) for f in failures] == [(2, "label", "ZeroDivisionError")]
    assert_table(out, pa.table({"label": pa.array(["ada:10", "None:5", "x:2"]), LINEAGE: lineage(0, 1, 4)}))


def test_map_with_a_schema_and_an_empty_batch() -> None:
    schema = pa.schema([("label", pa.string())])
    out, _ = run(Map(per_record, schema=schema), DATA.slice(0, 0))
    assert_table(out, pa.table({"label": pa.array([], pa.string()), LINEAGE: lineage()}))

    out, _ = run(Map(lambda r: None), DATA)
    assert out is not None and out.num_rows == 0 and out.column_names == [LINEAGE]


def test_map_needs_a_function_returning_dicts() -> None:
    with pytest.raises(ConfigurationError):
        Map("not callable")  # type: ignore[arg-type]
    _, failures = run(Map(lambda r: 1), DATA)  # type: ignore[arg-type, return-value]
    assert len(failures) == DATA.num_rows and {f.error_class for f in failures} == {"TypeError"}
