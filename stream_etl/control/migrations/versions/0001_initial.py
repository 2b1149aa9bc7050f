"""Catalog, connections, jobs, runs and API tokens.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _ts(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "catalog_databases",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(255), nullable=False, unique=True),
        sa.Column("description", sa.Text, nullable=False),
        _ts("created_at"),
    )
    op.create_table(
        "catalog_tables",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("database_id", sa.Integer, sa.ForeignKey("catalog_databases.id", ondelete="CASCADE"), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("location", sa.Text, nullable=False, index=True),
        sa.Column("format", sa.String(64), nullable=False),
        sa.Column("schema_json", sa.Text, nullable=False),
        sa.Column("partition_keys", sa.JSON, nullable=False),
        sa.Column("parameters", sa.JSON, nullable=False),
        sa.Column("classification", sa.String(64), nullable=False),
        sa.Column("schema_version", sa.Integer, nullable=False),
        _ts("created_at"),
        _ts("updated_at"),
        sa.UniqueConstraint("database_id", "name"),
    )
    op.create_table(
        "catalog_schema_versions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("table_id", sa.Integer, sa.ForeignKey("catalog_tables.id", ondelete="CASCADE"), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("schema_json", sa.Text, nullable=False),
        sa.Column("source", sa.String(255), nullable=False),
        _ts("created_at"),
        sa.UniqueConstraint("table_id", "version"),
    )
    op.create_table(
        "catalog_partitions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("table_id", sa.Integer, sa.ForeignKey("catalog_tables.id", ondelete="CASCADE"), nullable=False),
        sa.Column("values_key", sa.String(1024), nullable=False),
        sa.Column("values", sa.JSON, nullable=False),
        sa.Column("location", sa.Text, nullable=False),
        sa.Column("parameters", sa.JSON, nullable=False),
        _ts("created_at"),
        sa.UniqueConstraint("table_id", "values_key"),
    )
    op.create_table(
        "connections",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(255), nullable=False, unique=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("config", sa.JSON, nullable=False),
        sa.Column("secrets", sa.Text, nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        _ts("created_at"),
        _ts("updated_at"),
    )
    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(255), nullable=False, unique=True),
        sa.Column("topology", sa.Text, nullable=False),
        sa.Column("arguments", sa.JSON, nullable=False),
        sa.Column("workers", sa.Integer, nullable=False),
        sa.Column("mode", sa.String(32), nullable=False),
        sa.Column("max_retries", sa.Integer, nullable=False),
        sa.Column("timeout_s", sa.Float, nullable=True),
        sa.Column("connections", sa.JSON, nullable=False),
        sa.Column("app_id", sa.String(255), nullable=False),
        sa.Column("catalog_database", sa.String(255), nullable=True),
        _ts("created_at"),
        _ts("updated_at"),
    )
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("job_id", sa.Integer, sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False, index=True),
        sa.Column("state", sa.String(16), nullable=False, index=True),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("metrics", sa.JSON, nullable=False),
        sa.Column("supervisor", sa.String(255), nullable=True),
        sa.Column("pids", sa.JSON, nullable=False),
        sa.Column("stop_requested", sa.Boolean, nullable=False),
        _ts("created_at"),
        _ts("started_at", nullable=True),
        _ts("ended_at", nullable=True),
        _ts("heartbeat_at", nullable=True),
    )
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(255), nullable=False, unique=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        _ts("created_at"),
        _ts("revoked_at", nullable=True),
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
