"""Column shapes the hand-written revisions share.

A revision is history: once released, the DDL it emits must never change. Add a helper here rather
than editing one, and only change one together with every revision that calls it in mind.
"""

from __future__ import annotations

import sqlalchemy as sa


def id_column() -> sa.Column[object]:
    return sa.Column("id", sa.Integer, primary_key=True)


def name_column() -> sa.Column[object]:
    """A unique, required ``name`` (jobs, connections, crawlers, triggers...)."""
    return sa.Column("name", sa.String(255), nullable=False, unique=True)


def text_column(name: str) -> sa.Column[object]:
    return sa.Column(name, sa.Text, nullable=False)


def ts(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def parent_column(
    name: str, target: str, *, ondelete: str = "CASCADE", nullable: bool = False, index: bool = False
) -> sa.Column[object]:
    """A foreign key to ``target`` (``table.id``) that goes with its parent row."""
    return sa.Column(name, sa.Integer, sa.ForeignKey(target, ondelete=ondelete), nullable=nullable, index=index)
