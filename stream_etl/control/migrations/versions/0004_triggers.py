"""Triggers, trigger firings, workflows, workflow runs, action runs; run arguments on job runs.

Revision ID: 0004
Revises: 0001
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from stream_etl.control.migrations.columns import id_column, name_column, parent_column, text_column, ts

revision = "0004"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "workflows",
        id_column(),
        name_column(),
        text_column("description"),
        sa.Column("default_run_properties", sa.JSON, nullable=False),
        ts("created_at"),
        ts("updated_at"),
    )
    op.create_table(
        "triggers",
        id_column(),
        name_column(),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("schedule", sa.String(255), nullable=True),
        sa.Column("predicate", sa.JSON, nullable=True),
        sa.Column("event", sa.JSON, nullable=True),
        sa.Column("actions", sa.JSON, nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False),
        parent_column("workflow_id", "workflows.id", nullable=True),
        text_column("description"),
        sa.Column("state", sa.JSON, nullable=False),
        ts("enabled_at"),
        ts("created_at"),
        ts("updated_at"),
    )
    op.create_table(
        "workflow_runs",
        id_column(),
        parent_column("workflow_id", "workflows.id", index=True),
        sa.Column("state", sa.String(16), nullable=False, index=True),
        sa.Column("run_properties", sa.JSON, nullable=False),
        sa.Column("previous_run_id", sa.Integer, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        ts("started_at"),
        ts("ended_at", nullable=True),
    )
    op.create_table(
        "trigger_firings",
        id_column(),
        parent_column("trigger_id", "triggers.id", index=True),
        sa.Column("slot", sa.String(512), nullable=False),
        parent_column("workflow_run_id", "workflow_runs.id", nullable=True, index=True),
        text_column("reason"),
        ts("fired_at"),
        sa.UniqueConstraint("trigger_id", "slot"),
    )
    op.create_table(
        "trigger_action_runs",
        id_column(),
        parent_column("firing_id", "trigger_firings.id", nullable=True, index=True),
        parent_column("workflow_run_id", "workflow_runs.id", nullable=True, index=True),
        sa.Column("trigger", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("arguments", sa.JSON, nullable=False),
        sa.Column("state", sa.String(16), nullable=False, index=True),
        parent_column("job_run_id", "runs.id", ondelete="SET NULL", nullable=True),
        sa.Column("crawler_run_id", sa.Integer, nullable=True),
        sa.Column("origin_id", sa.Integer, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        ts("created_at"),
        ts("ended_at", nullable=True),
    )
    # A job run's own arguments (a trigger's action arguments, a workflow's run properties) over the job's.
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("arguments", sa.JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("arguments")
    for table in ("trigger_action_runs", "trigger_firings", "workflow_runs", "triggers", "workflows"):
        op.drop_table(table)
