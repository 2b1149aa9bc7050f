"""Triggers, trigger firings, workflows, workflow runs, action runs; run arguments on job runs.

Revision ID: 0004
Revises: 0001
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0001"
branch_labels = None
depends_on = None


def _ts(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "workflows",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(255), nullable=False, unique=True),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("default_run_properties", sa.JSON, nullable=False),
        _ts("created_at"),
        _ts("updated_at"),
    )
    op.create_table(
        "triggers",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(255), nullable=False, unique=True),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("schedule", sa.String(255), nullable=True),
        sa.Column("predicate", sa.JSON, nullable=True),
        sa.Column("event", sa.JSON, nullable=True),
        sa.Column("actions", sa.JSON, nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("workflow_id", sa.Integer, sa.ForeignKey("workflows.id", ondelete="CASCADE"), nullable=True),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("state", sa.JSON, nullable=False),
        _ts("enabled_at"),
        _ts("created_at"),
        _ts("updated_at"),
    )
    op.create_table(
        "workflow_runs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "workflow_id", sa.Integer, sa.ForeignKey("workflows.id", ondelete="CASCADE"), nullable=False, index=True
        ),
        sa.Column("state", sa.String(16), nullable=False, index=True),
        sa.Column("run_properties", sa.JSON, nullable=False),
        sa.Column("previous_run_id", sa.Integer, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        _ts("started_at"),
        _ts("ended_at", nullable=True),
    )
    op.create_table(
        "trigger_firings",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "trigger_id", sa.Integer, sa.ForeignKey("triggers.id", ondelete="CASCADE"), nullable=False, index=True
        ),
        sa.Column("slot", sa.String(512), nullable=False),
        sa.Column(
            "workflow_run_id",
            sa.Integer,
            sa.ForeignKey("workflow_runs.id", ondelete="CASCADE"),
            nullable=True,
            index=True,
        ),
        sa.Column("reason", sa.Text, nullable=False),
        _ts("fired_at"),
        sa.UniqueConstraint("trigger_id", "slot"),
    )
    op.create_table(
        "trigger_action_runs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "firing_id", sa.Integer, sa.ForeignKey("trigger_firings.id", ondelete="CASCADE"), nullable=True, index=True
        ),
        sa.Column(
            "workflow_run_id",
            sa.Integer,
            sa.ForeignKey("workflow_runs.id", ondelete="CASCADE"),
            nullable=True,
            index=True,
        ),
        sa.Column("trigger", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("arguments", sa.JSON, nullable=False),
        sa.Column("state", sa.String(16), nullable=False, index=True),
        sa.Column("job_run_id", sa.Integer, sa.ForeignKey("runs.id", ondelete="SET NULL"), nullable=True),
        sa.Column("crawler_run_id", sa.Integer, nullable=True),
        sa.Column("origin_id", sa.Integer, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        _ts("created_at"),
        _ts("ended_at", nullable=True),
    )
    # A job run's own arguments (a trigger's action arguments, a workflow's run properties) over the job's.
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("arguments", sa.JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("arguments")
    for table in ("trigger_action_runs", "trigger_firings", "workflow_runs", "triggers", "workflows"):
        op.drop_table(table)
