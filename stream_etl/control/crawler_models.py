"""The metadata store's tables for crawlers, their runs and custom classifiers (revision 0003)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from stream_etl.control.models import Base, utcnow


class Crawler(Base):
    __tablename__ = "crawlers"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    #: A list of targets: ``{"kind": "kafka"|"kinesis"|"s3"|"path"|"postgres", "path": ..., "connection": ...}``.
    targets: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    database: Mapped[str] = mapped_column(String(255))
    classifiers: Mapped[list[str]] = mapped_column(default=list)
    table_prefix: Mapped[str] = mapped_column(String(255), default="")
    update_behavior: Mapped[str] = mapped_column(String(16), default="update")
    delete_behavior: Mapped[str] = mapped_column(String(16), default="deprecate")
    recrawl_policy: Mapped[str] = mapped_column(String(32), default="everything")
    sample_size: Mapped[int] = mapped_column(Integer, default=100)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    runs: Mapped[list[CrawlerRun]] = relationship(back_populates="crawler", cascade="all, delete-orphan")


class CrawlerRun(Base):
    __tablename__ = "crawler_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    crawler_id: Mapped[int] = mapped_column(ForeignKey("crawlers.id", ondelete="CASCADE"), index=True)
    state: Mapped[str] = mapped_column(String(16), index=True)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    #: What the run changed (see :class:`stream_etl.control.crawlers.Changes`).
    changes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(default=None)
    crawler: Mapped[Crawler] = relationship(back_populates="runs")


class Classifier(Base):
    __tablename__ = "crawler_classifiers"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
