"""Catalog, connections, jobs, runs and API tokens.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from stream_etl.control.migrations.columns import id_column, name_column, parent_column, text_column, ts

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "catalog_databases",
        id_column(),
        name_column(),
        text_column("description"),
        ts("created_at"),
    )
    op.create_table(
        "catalog_tables",
        id_column(),
        parent_column("database_id", "catalog_databases.id"),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("location", sa.Text, nullable=False, index=True),
        sa.Column("format", sa.String(64), nullable=False),
        text_column("schema_json"),
        sa.Column("partition_keys", sa.JSON, nullable=False),
        sa.Column("parameters", sa.JSON, nullable=False),
        sa.Column("classification", sa.String(64), nullable=False),
        sa.Column("schema_version", sa.Integer, nullable=False),
        ts("created_at"),
        ts("updated_at"),
        sa.UniqueConstraint("database_id", "name"),
    )
    op.create_table(
        "catalog_schema_versions",
        id_column(),
        parent_column("table_id", "catalog_tables.id"),
        sa.Column("version", sa.Integer, nullable=False),
        text_column("schema_json"),
        sa.Column("source", sa.String(255), nullable=False),
        ts("created_at"),
        sa.UniqueConstraint("table_id", "version"),
    )
    op.create_table(
        "catalog_partitions",
        id_column(),
        parent_column("table_id", "catalog_tables.id"),
        sa.Column("values_key", sa.String(1024), nullable=False),
        sa.Column("values", sa.JSON, nullable=False),
        text_column("location"),
        sa.Column("parameters", sa.JSON, nullable=False),
        ts("created_at"),
        sa.UniqueConstraint("table_id", "values_key"),
    )
    op.create_table(
        "connections",
        id_column(),
        name_column(),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("config", sa.JSON, nullable=False),
        text_column("secrets"),
        text_column("description"),
        ts("created_at"),
        ts("updated_at"),
    )
    op.create_table(
        "jobs",
        id_column(),
        name_column(),
        text_column("topology"),
        sa.Column("arguments", sa.JSON, nullable=False),
        sa.Column("workers", sa.Integer, nullable=False),
        sa.Column("mode", sa.String(32), nullable=False),
        sa.Column("max_retries", sa.Integer, nullable=False),
        sa.Column("timeout_s", sa.Float, nullable=True),
        sa.Column("connections", sa.JSON, nullable=False),
        sa.Column("app_id", sa.String(255), nullable=False),
        sa.Column("catalog_database", sa.String(255), nullable=True),
        ts("created_at"),
        ts("updated_at"),
    )
    op.create_table(
        "runs",
        id_column(),
        parent_column("job_id", "jobs.id", index=True),
        sa.Column("state", sa.String(16), nullable=False, index=True),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("metrics", sa.JSON, nullable=False),
        sa.Column("supervisor", sa.String(255), nullable=True),
        sa.Column("pids", sa.JSON, nullable=False),
        sa.Column("stop_requested", sa.Boolean, nullable=False),
        ts("created_at"),
        ts("started_at", nullable=True),
        ts("ended_at", nullable=True),
        ts("heartbeat_at", nullable=True),
    )
    op.create_table(
        "api_tokens",
        id_column(),
        name_column(),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        ts("created_at"),
        ts("revoked_at", nullable=True),
    )


def downgrade() -> None:
    for name in (
        "api_tokens",
        "runs",
        "jobs",
        "connections",
        "catalog_partitions",
        "catalog_schema_versions",
        "catalog_tables",
        "catalog_databases",
    ):
        op.drop_table(name)
