"""stream-etl: streaming ETL from Kafka into Delta Lake, exactly once, on Arrow micro-batches."""

import gc as _gc

# Importing the package creates ~50,000 long-lived objects (pyarrow, pydantic, the steps):
# the cyclic collector would run over them a few times meanwhile (~0.05 CPU-s) for nothing.
_collecting = _gc.isenabled()
_gc.disable()
try:
    from stream_etl.context import RunContext
    from stream_etl.decode import JsonFormat
    from stream_etl.errors import StreamEtlError
    from stream_etl.loader import job_args
    from stream_etl.runloop import RunSummary, run
    from stream_etl.topology import Stream, Topology
finally:
    if _collecting:
        _gc.enable()

__version__ = "0.1.0"

__all__ = [
    "JsonFormat",
    "RunContext",
    "RunSummary",
    "Stream",
    "StreamEtlError",
    "Topology",
    "__version__",
    "job_args",
    "run",
]
