"""What every source and sink is opened with: the job's identity, settings and mode."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from stream_etl.errors import ConfigurationError
from stream_etl.settings import Settings

if TYPE_CHECKING:
    from stream_etl.catalog import TableCatalog

RunMode = Literal["continuous", "until_caught_up"]

_APP_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,199}$")


def check_app_id(app_id: str) -> str:
    if not _APP_ID.match(app_id):
        msg = (
            f"app id {app_id!r} is not valid: use letters, digits, '.', '_' and '-' "
            "(it names the job's positions in every sink)"
        )
        raise ConfigurationError(msg)
    return app_id


@dataclass(frozen=True, slots=True)
class RunContext:
    """The job's app id keys its stored positions: two runs with one app id are one job."""

    app_id: str
    settings: Settings = field(default_factory=Settings)
    mode: RunMode = "continuous"
    args: Mapping[str, str] = field(default_factory=dict)
    #: Told by sinks when they create a table or change its schema (stream_etl.catalog); None: no catalog.
    catalog: TableCatalog | None = None

    def __post_init__(self) -> None:
        check_app_id(self.app_id)
