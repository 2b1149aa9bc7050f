"""The schema registry's tables: registries, schemas and their versions (migration 0002).

A version's primary key is its *global id*: unique across every registry and schema and
never reused, so it serves as the schema id of Confluent's wire format.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from stream_etl.control.models import Base, utcnow


class Registry(Base):
    __tablename__ = "registry_registries"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    schemas: Mapped[list[RegisteredSchema]] = relationship(back_populates="owner", cascade="all, delete-orphan")


class RegisteredSchema(Base):
    __tablename__ = "registry_schemas"
    __table_args__ = (UniqueConstraint("registry_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    registry_id: Mapped[int] = mapped_column(ForeignKey("registry_registries.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(255))
    data_format: Mapped[str] = mapped_column(String(16))
    compatibility: Mapped[str] = mapped_column(String(16))
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    owner: Mapped[Registry] = relationship(back_populates="schemas")
    versions: Mapped[list[RegisteredVersion]] = relationship(
        back_populates="schema", cascade="all, delete-orphan", order_by="RegisteredVersion.version"
    )


class RegisteredVersion(Base):
    __tablename__ = "registry_schema_versions"
    # AUTOINCREMENT: SQLite would otherwise hand a deleted highest id out again.
    __table_args__ = (UniqueConstraint("schema_id", "version"), {"sqlite_autoincrement": True})

    #: The global id (Confluent wire-format schema id).
    id: Mapped[int] = mapped_column(primary_key=True)
    schema_id: Mapped[int] = mapped_column(ForeignKey("registry_schemas.id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    definition: Mapped[str] = mapped_column(Text)
    #: SHA-256 of the definition's canonical form: registering an identical definition finds this row.
    fingerprint: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(16), default="AVAILABLE")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    schema: Mapped[RegisteredSchema] = relationship(back_populates="versions")
