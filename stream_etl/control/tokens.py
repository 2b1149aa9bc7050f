"""API tokens: random 256-bit bearer tokens, stored as SHA-256 hashes, each with a role.

Roles, each including the ones before it:

- ``viewer``: read the catalog, connections (masked), jobs and runs;
- ``operator``: also start and stop runs, test connections, edit the catalog and jobs;
- ``admin``: also create and delete connections and manage tokens.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime
from typing import Literal

from pydantic import BaseModel
from sqlalchemy import select

from stream_etl.control.catalog import check_name
from stream_etl.control.errors import NotFound
from stream_etl.control.models import ApiToken, utcnow
from stream_etl.control.store import Store
from stream_etl.errors import ConfigurationError

Role = Literal["viewer", "operator", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "operator", "admin")
PREFIX = "se_"


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def allows(role: str, needed: str) -> bool:
    return ROLES.index(role) >= ROLES.index(needed)  # type: ignore[arg-type]


class TokenInfo(BaseModel):
    name: str
    role: Role
    created_at: datetime
    revoked_at: datetime | None


class Tokens:
    def __init__(self, store: Store) -> None:
        self.store = store

    def create(self, name: str, role: str) -> tuple[str, TokenInfo]:
        """A new token: the plaintext is returned once and never stored."""
        check_name("token", name)
        if role not in ROLES:
            msg = f"role {role!r} is not known: use one of {', '.join(ROLES)}"
            raise ConfigurationError(msg)
        token = PREFIX + secrets.token_urlsafe(32)
        with self.store.creating("token", name) as session:
            row = ApiToken(name=name, role=role, token_hash=_hash(token))
            session.add(row)
            session.flush()
            info = TokenInfo(name=name, role=role, created_at=row.created_at, revoked_at=None)  # type: ignore[arg-type]
        return token, info

    def verify(self, token: str) -> TokenInfo | None:
        """The token's info when it is valid and not revoked."""
        digest = _hash(token)
        with self.store.session() as session:
            row = session.scalars(select(ApiToken).where(ApiToken.token_hash == digest)).first()
            if row is None or row.revoked_at is not None or not hmac.compare_digest(row.token_hash, digest):
                return None
            return TokenInfo(name=row.name, role=row.role, created_at=row.created_at, revoked_at=None)  # type: ignore[arg-type]

    def list_all(self) -> list[TokenInfo]:
        with self.store.session() as session:
            return [
                TokenInfo(name=r.name, role=r.role, created_at=r.created_at, revoked_at=r.revoked_at)  # type: ignore[arg-type]
                for r in session.scalars(select(ApiToken).order_by(ApiToken.name))
            ]

    def revoke(self, name: str) -> None:
        with self.store.session() as session:
            row = session.scalars(select(ApiToken).where(ApiToken.name == name)).first()
            if row is None:
                raise NotFound(kind="token", name=name)
            row.revoked_at = row.revoked_at or utcnow()
