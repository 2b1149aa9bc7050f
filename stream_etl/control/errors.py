"""Errors of the control plane, under the engine's root error::

    StreamEtlError
    └── ControlError
        ├── NotFound          (terminal) no such database, table, connection, job, run or token
        ├── AlreadyExists     (terminal) the name is taken
        └── InvalidState      (terminal) e.g. stopping a run that already ended

Bad settings (an unreadable key file, a malformed store URL) raise the engine's
:class:`~stream_etl.errors.ConfigurationError`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

from stream_etl.errors import ConfigurationError, StreamEtlError, TerminalError

if TYPE_CHECKING:
    from pydantic import BaseModel, ValidationError


class ControlError(StreamEtlError):
    """Raised by the control plane."""


class NotFound(ControlError, TerminalError):
    def __init__(self, *, kind: str, name: object) -> None:
        super().__init__(f"no {kind} {name!r}")
        self.kind, self.name = kind, name


class AlreadyExists(ControlError, TerminalError):
    def __init__(self, *, kind: str, name: object) -> None:
        super().__init__(f"{kind} {name!r} already exists")
        self.kind, self.name = kind, name


class InvalidState(ControlError, TerminalError):
    """The object is not in a state that allows the operation."""


def not_valid(exc: ValidationError, what: str) -> ConfigurationError:
    """A settings model's validation errors as one ConfigurationError: ``job is not valid: workers: ...``."""
    problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or what}: {e['msg']}" for e in exc.errors())
    return ConfigurationError(f"{what} is not valid: {problems}")


_Model = TypeVar("_Model", bound="BaseModel")


def validated(model: type[_Model], values: object, what: str) -> _Model:
    """``values`` as a ``model``, its problems as one ConfigurationError (see :func:`not_valid`)."""
    from pydantic import ValidationError

    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise not_valid(exc, what) from None
