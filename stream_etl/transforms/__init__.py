"""Transform steps. Each is a named step over whole Arrow tables; see :class:`Step`."""

from stream_etl.transforms.base import Step, run_step
from stream_etl.transforms.columns import Cast, Drop, Rename, Select
from stream_etl.transforms.dedupe import Dedupe
from stream_etl.transforms.enrich import Enrich, FileLookup, Lookup
from stream_etl.transforms.expressions import Expression
from stream_etl.transforms.functions import MapBatches
from stream_etl.transforms.rows import Derive, Filter
from stream_etl.transforms.stateful import StatefulStep
from stream_etl.transforms.windows import Window

__all__ = [
    "Cast",
    "Dedupe",
    "Derive",
    "Drop",
    "Enrich",
    "Expression",
    "FileLookup",
    "Filter",
    "Lookup",
    "MapBatches",
    "Rename",
    "Select",
    "StatefulStep",
    "Step",
    "Window",
    "run_step",
]
