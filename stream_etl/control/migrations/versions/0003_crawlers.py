"""Crawlers, crawler runs and custom classifiers.

Revision ID: 0003
Revises: 0001
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0001"
branch_labels = None
depends_on = None


def _ts(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "crawlers",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(255), nullable=False, unique=True),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("targets", sa.JSON, nullable=False),
        sa.Column("database", sa.String(255), nullable=False),
        sa.Column("classifiers", sa.JSON, nullable=False),
        sa.Column("table_prefix", sa.String(255), nullable=False),
        sa.Column("update_behavior", sa.String(16), nullable=False),
        sa.Column("delete_behavior", sa.String(16), nullable=False),
        sa.Column("recrawl_policy", sa.String(32), nullable=False),
        sa.Column("sample_size", sa.Integer, nullable=False),
        _ts("created_at"),
        _ts("updated_at"),
    )
    op.create_table(
        "crawler_runs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "crawler_id", sa.Integer, sa.ForeignKey("crawlers.id", ondelete="CASCADE"), nullable=False, index=True
        ),
        sa.Column("state", sa.String(16), nullable=False, index=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("changes", sa.JSON, nullable=False),
        _ts("started_at"),
        _ts("ended_at", nullable=True),
    )
    op.create_table(
        "crawler_classifiers",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(255), nullable=False, unique=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("settings", sa.JSON, nullable=False),
        _ts("created_at"),
    )


def downgrade() -> None:
    for name in ("crawler_classifiers", "crawler_runs", "crawlers"):
        op.drop_table(name)
