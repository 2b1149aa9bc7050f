"""What a trigger is: its type, schedule, predicate, event condition and actions (pydantic
models, checked on creation), cron slots, and when a predicate is met. See
:mod:`stream_etl.control.triggers` for the trigger types."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from stream_etl.control.catalog import check_name
from stream_etl.control.errors import validated
from stream_etl.control.models import utcnow
from stream_etl.errors import ConfigurationError

TriggerType = Literal["ON_DEMAND", "SCHEDULED", "CONDITIONAL", "EVENT"]
#: End states a condition can wait for (crawler runs end SUCCEEDED or FAILED).
EndState = Literal["SUCCEEDED", "FAILED", "TIMEOUT", "STOPPED"]
#: An action run still going: its job run queued or running, its crawler waiting or running.
ACTIVE_ACTIONS: frozenset[str] = frozenset({"STARTING", "WAITING", "RUNNING", "STOPPING"})
FAILED_ACTIONS: frozenset[str] = frozenset({"FAILED", "TIMEOUT", "STOPPED"})


class _Target(BaseModel):
    """Exactly one of ``job`` and ``crawler``."""

    job: str | None = None
    crawler: str | None = None

    @model_validator(mode="after")
    def _one(self) -> _Target:
        if (self.job is None) == (self.crawler is None):
            msg = "give exactly one of job and crawler"
            raise ValueError(msg)
        return self

    @property
    def kind(self) -> Literal["job", "crawler"]:
        return "job" if self.job is not None else "crawler"

    @property
    def target(self) -> str:
        return self.job or self.crawler or ""


class Condition(_Target):
    state: EndState = "SUCCEEDED"


class Predicate(BaseModel):
    logical: Literal["AND", "ANY"] = "AND"
    conditions: list[Condition] = Field(min_length=1)


class EventCondition(BaseModel):
    """New data that fires an EVENT trigger (Glue's EventBatchingCondition, for topics and prefixes)."""

    source: Literal["kafka", "s3"]
    topic: str | None = Field(default=None, description="kafka: the topic whose end offsets are watched")
    location: str | None = Field(default=None, description="s3: s3://bucket/prefix whose new objects are watched")
    connection: str | None = Field(
        default=None, description="kafka or s3 connection; default: the scheduler's STREAM_ETL_* environment"
    )
    batch_size: int = Field(default=1, ge=1, description="new records (kafka) or objects (s3) that fire at once")
    batch_window_s: float = Field(default=900.0, gt=0, description="fire this long after the first new data")

    @model_validator(mode="after")
    def _check(self) -> EventCondition:
        if self.source == "kafka" and not self.topic:
            msg = "a kafka event needs a topic"
            raise ValueError(msg)
        if self.source == "s3" and not (self.location or "").startswith("s3://"):
            msg = "an s3 event needs a location s3://bucket/prefix"
            raise ValueError(msg)
        return self


class Action(_Target):
    arguments: dict[str, str] = Field(default_factory=dict, description="job arguments over the job's own")


class TriggerSpec(BaseModel):
    name: str
    type: TriggerType
    schedule: str | None = Field(default=None, description="cron, UTC: 5 fields, or 6 with seconds first")
    predicate: Predicate | None = None
    event: EventCondition | None = None
    actions: list[Action] = Field(min_length=1)
    enabled: bool = True
    workflow: str | None = None
    description: str = ""

    @model_validator(mode="after")
    def _check(self) -> TriggerSpec:
        check_name("trigger", self.name)
        needs = {"SCHEDULED": "schedule", "CONDITIONAL": "predicate", "EVENT": "event"}
        for field in ("schedule", "predicate", "event"):
            given = getattr(self, field) is not None
            if given != (needs.get(self.type) == field):
                msg = f"a {self.type} trigger {'needs' if not given else 'takes no'} {field}"
                raise ValueError(msg)
        if self.schedule is not None:
            last_slot(self.schedule, utcnow())  # raises on a bad expression
        return self


class TriggerInfo(TriggerSpec):
    enabled_at: datetime
    created_at: datetime
    updated_at: datetime


class ActionRunInfo(BaseModel):
    """One fired action: its job run or crawler run and state (inside a workflow: a node's run)."""

    id: int
    trigger: str
    kind: Literal["job", "crawler"]
    name: str
    arguments: dict[str, str]
    state: str
    job_run_id: int | None
    crawler_run_id: int | None
    error: str | None
    created_at: datetime
    ended_at: datetime | None


class FiringInfo(BaseModel):
    id: int
    trigger: str
    slot: str
    reason: str
    workflow_run_id: int | None
    fired_at: datetime
    actions: list[ActionRunInfo]


def parse_trigger(values: dict[str, Any]) -> TriggerSpec:
    return validated(TriggerSpec, values, "trigger")


def last_slot(schedule: str, now: datetime) -> datetime:
    """The latest cron slot at or before ``now`` (UTC); 6 fields put seconds first."""
    from croniter import croniter

    try:
        # croniter's get_prev is strictly earlier than its start: start one second on.
        found: datetime = croniter(
            schedule, now.replace(microsecond=0) + timedelta(seconds=1), second_at_beginning=True
        ).get_prev(datetime)
    except (ValueError, KeyError) as exc:  # croniter's errors are ValueErrors
        msg = f"schedule {schedule!r} is not a cron expression: use 5 fields ('*/5 * * * *') or 6 with seconds first"
        raise ConfigurationError(msg) from exc
    return found


def satisfied(predicate: Predicate, ended: Mapping[tuple[str, str], tuple[str, str]]) -> list[list[str]]:
    """The groups of ended runs that fire a conditional trigger.

    ``ended`` maps ``(kind, name)`` to the (state, key) of that job's or crawler's latest ended
    run. AND: one group with every condition's run, when every condition is met. ANY: one
    group per met condition. A group's keys make the firing's slot, so it fires once per group.
    """
    met: list[str] = []
    for condition in predicate.conditions:
        found = ended.get((condition.kind, condition.target))
        if found is not None and found[0] == condition.state:
            met.append(found[1])
        elif predicate.logical == "AND":
            return []
    if predicate.logical == "AND":
        return [sorted(set(met))]
    return [[key] for key in dict.fromkeys(met)]
