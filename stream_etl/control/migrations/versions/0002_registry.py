"""Schema registry: registries, schemas, schema versions.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _ts(name: str) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False)


def upgrade() -> None:
    op.create_table(
        "registry_registries",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(255), nullable=False, unique=True),
        sa.Column("description", sa.Text, nullable=False),
        _ts("created_at"),
    )
    op.create_table(
        "registry_schemas",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "registry_id", sa.Integer, sa.ForeignKey("registry_registries.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("data_format", sa.String(16), nullable=False),
        sa.Column("compatibility", sa.String(16), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        _ts("created_at"),
        _ts("updated_at"),
        sa.UniqueConstraint("registry_id", "name"),
    )
    op.create_table(
        "registry_schema_versions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "schema_id",
            sa.Integer,
            sa.ForeignKey("registry_schemas.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("definition", sa.Text, nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False, index=True),
        sa.Column("status", sa.String(16), nullable=False),
        _ts("created_at"),
        sa.UniqueConstraint("schema_id", "version"),
        sqlite_autoincrement=True,  # global ids are never reused, even after the highest is deleted
    )


def downgrade() -> None:
    for name in ("registry_schema_versions", "registry_schemas", "registry_registries"):
        op.drop_table(name)
