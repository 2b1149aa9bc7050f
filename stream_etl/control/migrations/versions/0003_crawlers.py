"""Crawlers, crawler runs and custom classifiers.

Revision ID: 0003
Revises: 0001
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from stream_etl.control.migrations.columns import id_column, name_column, parent_column, text_column, ts

revision = "0003"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "crawlers",
        id_column(),
        name_column(),
        text_column("description"),
        sa.Column("targets", sa.JSON, nullable=False),
        sa.Column("database", sa.String(255), nullable=False),
        sa.Column("classifiers", sa.JSON, nullable=False),
        sa.Column("table_prefix", sa.String(255), nullable=False),
        sa.Column("update_behavior", sa.String(16), nullable=False),
        sa.Column("delete_behavior", sa.String(16), nullable=False),
        sa.Column("recrawl_policy", sa.String(32), nullable=False),
        sa.Column("sample_size", sa.Integer, nullable=False),
        ts("created_at"),
        ts("updated_at"),
    )
    op.create_table(
        "crawler_runs",
        id_column(),
        parent_column("crawler_id", "crawlers.id", index=True),
        sa.Column("state", sa.String(16), nullable=False, index=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("changes", sa.JSON, nullable=False),
        ts("started_at"),
        ts("ended_at", nullable=True),
    )
    op.create_table(
        "crawler_classifiers",
        id_column(),
        name_column(),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("settings", sa.JSON, nullable=False),
        ts("created_at"),
    )


def downgrade() -> None:
    for name in ("crawler_classifiers", "crawler_runs", "crawlers"):
        op.drop_table(name)
