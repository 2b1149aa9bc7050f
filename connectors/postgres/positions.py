"""The positions table: where a Postgres sink stores, per job, table and source partition,
the last position written (and the source's cursor), inside the transaction of the rows.

    stream_etl_positions (target_table, app_id, stream, part) -> position, cursor, writer, updated_at

A commit locks its partitions' rows (``FOR UPDATE``) and compares them with the positions
its batch was planned on (:meth:`PositionsTable.fence`); new partitions are inserted with a
plain ``INSERT``, so two first commits of one partition collide on the primary key.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from psycopg import Connection, sql
from psycopg import errors as pgerrors

from stream_etl.errors import PositionConflict
from stream_etl.records import SourcePartition

WORKER = f"{socket.gethostname()}:{os.getpid()}"

#: A partition's key in the table: the stream and the partition as text.
Key = tuple[str, str]


def key_of(partition: SourcePartition) -> Key:
    return partition.stream, str(partition.partition)


class PositionsTable:
    """This job's rows of the positions table ``identifier`` for the target table ``target``."""

    def __init__(self, identifier: sql.Identifier, target: str, app_id: str) -> None:
        self.identifier, self.target, self.app_id = identifier, target, app_id

    def create(self, conn: Connection[Any]) -> None:
        statement = sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} ("
            " target_table VARCHAR(512) NOT NULL, app_id VARCHAR(256) NOT NULL,"
            " stream VARCHAR(512) NOT NULL, part VARCHAR(256) NOT NULL,"
            " position BIGINT NOT NULL, cursor VARCHAR(4096), writer VARCHAR(256),"
            " updated_at TIMESTAMPTZ NOT NULL,"
            " PRIMARY KEY (target_table, app_id, stream, part))"
        ).format(self.identifier)
        try:
            conn.execute(statement)
        except pgerrors.UniqueViolation:  # two workers created it at once: it exists now
            pass

    def read(self, conn: Connection[Any]) -> dict[Key, tuple[int, str | None]]:
        rows = conn.execute(
            sql.SQL("SELECT stream, part, position, cursor FROM {} WHERE target_table = %s AND app_id = %s").format(
                self.identifier
            ),
            (self.target, self.app_id),
        ).fetchall()
        return {(stream, part): (position, cursor) for stream, part, position, cursor in rows}

    def fence(
        self, conn: Connection[Any], planned: Mapping[Key, int], positions: Mapping[SourcePartition, int]
    ) -> None:
        """Lock the rows of ``positions``' partitions; raise PositionConflict if they differ from ``planned``."""
        keys = sorted({key_of(sp) for sp in positions})
        current = {
            (stream, part): position
            for stream, part, position in conn.execute(
                sql.SQL(
                    "SELECT stream, part, position FROM {} WHERE target_table = %s AND app_id = %s"
                    " AND stream = ANY(%s) AND part = ANY(%s) ORDER BY stream, part FOR UPDATE"
                ).format(self.identifier),
                (self.target, self.app_id, [k[0] for k in keys], [k[1] for k in keys]),
            ).fetchall()
        }
        moved = [f"{s}-{p}" for s, p in keys if current.get((s, p)) != planned.get((s, p))]
        if moved:
            msg = (
                f"stored positions of {', '.join(moved)} in {self.target} moved since the batch was planned "
                "(another worker committed them)"
            )
            raise PositionConflict(msg, table_uri=self.target, positions=positions)

    def store(
        self,
        conn: Connection[Any],
        planned: Mapping[Key, int],
        positions: Mapping[SourcePartition, int],
        cursors: Mapping[SourcePartition, str],
    ) -> None:
        now = datetime.now(UTC)
        updates: list[tuple[Any, ...]] = []
        inserts: list[tuple[Any, ...]] = []
        for sp, position in positions.items():
            stream, part = key_of(sp)
            row = (position, cursors.get(sp), WORKER, now, self.target, self.app_id, stream, part)
            (updates if planned.get((stream, part)) is not None else inserts).append(row)
        with conn.cursor() as cursor:
            if updates:
                cursor.executemany(
                    sql.SQL(
                        "UPDATE {} SET position = %s, cursor = %s, writer = %s, updated_at = %s"
                        " WHERE target_table = %s AND app_id = %s AND stream = %s AND part = %s"
                    ).format(self.identifier),
                    updates,
                )
            if inserts:  # a plain INSERT: a concurrent first commit of the same partition fails here
                cursor.executemany(
                    sql.SQL(
                        "INSERT INTO {} (position, cursor, writer, updated_at, target_table, app_id, stream, part)"
                        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
                    ).format(self.identifier),
                    inserts,
                )
