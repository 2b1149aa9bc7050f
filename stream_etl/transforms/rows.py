"""Row-wise expression steps: filter rows, derive a column."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from stream_etl.errors import ConfigurationError
from stream_etl.transforms.base import Step
from stream_etl.transforms.expressions import Expression


class Filter(Step):
    """Keep the rows where ``predicate`` is true (NULL keeps no row)."""

    kind = "filter"

    def __init__(self, predicate: str | pc.Expression) -> None:
        super().__init__()
        self.predicate = Expression(predicate)

    def apply(self, table: pa.Table) -> pa.Table:
        mask = self.predicate.evaluate(table, strict=self.strict_columns)
        if not pa.types.is_boolean(mask.type):
            msg = f"filter {self.name!r}: {self.predicate} is {mask.type}, not a boolean"
            raise ConfigurationError(msg)
        return table.filter(mask, null_selection_behavior="drop")

    def describe(self) -> str:
        return f"filter {self.predicate}"


class Derive(Step):
    """Add (or replace) ``column`` computed by ``expression``."""

    kind = "derive"

    def __init__(self, column: str, expression: str | pc.Expression) -> None:
        super().__init__()
        self.column = column
        self.expression = Expression(expression)

    def apply(self, table: pa.Table) -> pa.Table:
        values = self.expression.evaluate(table, strict=self.strict_columns)
        if self.column in table.column_names:
            index = table.schema.get_field_index(self.column)
            return table.set_column(index, self.column, values)
        return table.append_column(self.column, values)

    def describe(self) -> str:
        return f"derive {self.column} = {self.expression}"
