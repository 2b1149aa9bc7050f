"""The control plane: a metadata store with the catalog, connections, jobs and runs, a
worker supervisor, a REST API and CLI commands (docs/CONTROL_PLANE.md).

It depends on the engine, never the reverse: the engine reaches it only through the
optional ``catalog`` hook of :class:`stream_etl.context.RunContext`, imported lazily.
Nothing is imported here, so ``import stream_etl.control`` stays cheap; the modules
need the ``control`` extra (``pip install 'stream-etl[control]'``).
"""
