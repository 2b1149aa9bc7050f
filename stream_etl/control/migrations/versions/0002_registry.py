"""Schema registry: registries, schemas, schema versions.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from stream_etl.control.migrations.columns import id_column, name_column, parent_column, text_column, ts

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "registry_registries",
        id_column(),
        name_column(),
        text_column("description"),
        ts("created_at"),
    )
    op.create_table(
        "registry_schemas",
        id_column(),
        parent_column("registry_id", "registry_registries.id"),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("data_format", sa.String(16), nullable=False),
        sa.Column("compatibility", sa.String(16), nullable=False),
        text_column("description"),
        ts("created_at"),
        ts("updated_at"),
        sa.UniqueConstraint("registry_id", "name"),
    )
    op.create_table(
        "registry_schema_versions",
        id_column(),
        parent_column("schema_id", "registry_schemas.id", index=True),
        sa.Column("version", sa.Integer, nullable=False),
        text_column("definition"),
        sa.Column("fingerprint", sa.String(64), nullable=False, index=True),
        sa.Column("status", sa.String(16), nullable=False),
        ts("created_at"),
        sa.UniqueConstraint("schema_id", "version"),
        sqlite_autoincrement=True,  # global ids are never reused, even after the highest is deleted
    )


def downgrade() -> None:
    for name in ("registry_schema_versions", "registry_schemas", "registry_registries"):
        op.drop_table(name)
