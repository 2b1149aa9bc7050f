"""Tables of triggers and workflows (migration ``0004``).

A **firing** is one time a trigger fired; ``(trigger, slot)`` is unique, so two schedulers
evaluating the same cron slot, the same ended runs or the same new data never fire twice.
An **action run** is one action of a firing (a job run queued through ``Jobs.start``, or a
crawler run done by a scheduler); inside a workflow it is a node's run in a workflow run.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from stream_etl.control.models import Base, utcnow


class Workflow(Base):
    __tablename__ = "workflows"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    default_run_properties: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    triggers: Mapped[list[Trigger]] = relationship(back_populates="workflow", cascade="all, delete-orphan")


class Trigger(Base):
    __tablename__ = "triggers"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    type: Mapped[str] = mapped_column(String(16))
    schedule: Mapped[str | None] = mapped_column(String(255), default=None)
    predicate: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    event: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    actions: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    workflow_id: Mapped[int | None] = mapped_column(ForeignKey("workflows.id", ondelete="CASCADE"), default=None)
    description: Mapped[str] = mapped_column(Text, default="")
    #: What an event trigger has seen so far (its baseline, when new data was first seen).
    state: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: Cron slots and ended runs before this moment never fire the trigger.
    enabled_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    workflow: Mapped[Workflow | None] = relationship(back_populates="triggers")


class WorkflowRun(Base):
    __tablename__ = "workflow_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    workflow_id: Mapped[int] = mapped_column(ForeignKey("workflows.id", ondelete="CASCADE"), index=True)
    state: Mapped[str] = mapped_column(String(16), index=True)
    run_properties: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: The failed run this one resumes.
    previous_run_id: Mapped[int | None] = mapped_column(Integer, default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(default=None)
    workflow: Mapped[Workflow] = relationship()


class TriggerFiring(Base):
    __tablename__ = "trigger_firings"
    __table_args__ = (UniqueConstraint("trigger_id", "slot"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    trigger_id: Mapped[int] = mapped_column(ForeignKey("triggers.id", ondelete="CASCADE"), index=True)
    slot: Mapped[str] = mapped_column(String(512))
    workflow_run_id: Mapped[int | None] = mapped_column(
        ForeignKey("workflow_runs.id", ondelete="CASCADE"), default=None, index=True
    )
    reason: Mapped[str] = mapped_column(Text, default="")
    fired_at: Mapped[datetime] = mapped_column(default=utcnow)
    trigger: Mapped[Trigger] = relationship()


class ActionRun(Base):
    __tablename__ = "trigger_action_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    firing_id: Mapped[int | None] = mapped_column(
        ForeignKey("trigger_firings.id", ondelete="CASCADE"), default=None, index=True
    )
    workflow_run_id: Mapped[int | None] = mapped_column(
        ForeignKey("workflow_runs.id", ondelete="CASCADE"), default=None, index=True
    )
    trigger: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(16))  # job | crawler
    name: Mapped[str] = mapped_column(String(255))
    arguments: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: STARTING (job not queued yet) | WAITING (crawler for a scheduler) | RUNNING | a run's end state
    state: Mapped[str] = mapped_column(String(16), index=True)
    job_run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id", ondelete="SET NULL"), default=None)
    crawler_run_id: Mapped[int | None] = mapped_column(Integer, default=None)
    #: The action run this one carries over from a resumed workflow run (itself when None).
    origin_id: Mapped[int | None] = mapped_column(Integer, default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(default=None)
