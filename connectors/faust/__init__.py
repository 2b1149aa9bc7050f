"""Faust interop (faust-streaming): hand a Faust app's stream to stream-etl's batching and sinks."""

from connectors.faust.agent import FaustSource, stream_etl_agent

__all__ = ["FaustSource", "stream_etl_agent"]
