"""Transform steps. Each is a named step over whole Arrow tables; see :class:`Step`."""

from stream_etl.transforms.base import Step, run_step
from stream_etl.transforms.choice import ResolveChoice
from stream_etl.transforms.columns import Cast, Drop, Rename, Select
from stream_etl.transforms.dedupe import Dedupe
from stream_etl.transforms.enrich import Enrich, FileLookup, Lookup
from stream_etl.transforms.expressions import Expression
from stream_etl.transforms.functions import Map, MapBatches
from stream_etl.transforms.mapping import ApplyMapping, DropNullFields, FillMissingValues
from stream_etl.transforms.nested import Explode, Flatten, Relationalize, RelationalizeChildren, Unbox
from stream_etl.transforms.pii import Hash, Mask, Redact
from stream_etl.transforms.rows import Derive, Filter
from stream_etl.transforms.sql import Sql, SqlAggregate
from stream_etl.transforms.stateful import StatefulStep
from stream_etl.transforms.time_columns import DatePartitions, IngestionTime
from stream_etl.transforms.windows import Window

__all__ = [
    "ApplyMapping",
    "Cast",
    "DatePartitions",
    "Dedupe",
    "Derive",
    "Drop",
    "DropNullFields",
    "Enrich",
    "Explode",
    "Expression",
    "FileLookup",
    "FillMissingValues",
    "Filter",
    "Flatten",
    "Hash",
    "IngestionTime",
    "Lookup",
    "Map",
    "MapBatches",
    "Mask",
    "Redact",
    "Relationalize",
    "RelationalizeChildren",
    "Rename",
    "ResolveChoice",
    "Select",
    "Sql",
    "SqlAggregate",
    "StatefulStep",
    "Step",
    "Unbox",
    "Window",
    "run_step",
]
