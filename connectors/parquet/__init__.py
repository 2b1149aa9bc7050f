"""Parquet files connector: a sink whose file names derive from source positions, with a
manifest per commit holding the stored positions."""

from connectors.parquet.sink import ParquetSink, read_table

__all__ = ["ParquetSink", "read_table"]
