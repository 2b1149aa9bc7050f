"""Postgres connector (psycopg 3): a sink that stores source positions in a table, in the
same transaction as the rows."""

from connectors.postgres.sink import PostgresSink

__all__ = ["PostgresSink"]
