"""Where Confluent-framed records' writer schemas come from, by schema id.

A :class:`SchemaResolver` returns the Avro schema (JSON text) for an id, or
``None`` when the id is unknown (the record is then dead-lettered). Resolvers
are asked once per id and run; formats cache what they return.

- :class:`DictResolver`: ids -> schemas given in code.
- :class:`DirectoryResolver`: ``<id>.avsc`` files in a directory.
- :class:`RegistryResolver`: a Confluent-compatible schema registry over HTTP
  (``GET /schemas/ids/<id>``), e.g. the control plane's API at
  ``http://127.0.0.1:8080/registry/confluent`` with ``bearer_token=``. A registry that
  cannot be reached (or refuses the credentials) raises
  :class:`~stream_etl.errors.SchemaRegistryUnavailable` (transient): records are
  not dead-lettered because of an outage.
- :class:`StoreResolver`: the control plane's schema registry read straight from its
  metadata store, by global schema id (needs the ``control`` extra; SQLAlchemy is
  imported on the first lookup, not before).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stream_etl.errors import ConfigurationError, SchemaRegistryUnavailable

if TYPE_CHECKING:
    from stream_etl.control.store import Store


class SchemaResolver(ABC):
    """Finds a writer schema by its id."""

    @abstractmethod
    def resolve(self, schema_id: int) -> str | None:
        """The schema (Avro JSON text) registered under ``schema_id``, or None if there is none."""


class DictResolver(SchemaResolver):
    """Schemas given in code: ``DictResolver({1: schema_v1, 2: schema_v2})`` (dicts or JSON text)."""

    def __init__(self, schemas: Mapping[int, Mapping[str, Any] | str]) -> None:
        self.schemas = {int(k): v if isinstance(v, str) else json.dumps(v) for k, v in schemas.items()}

    def resolve(self, schema_id: int) -> str | None:
        return self.schemas.get(schema_id)

    def __repr__(self) -> str:
        return f"DictResolver(ids={sorted(self.schemas)})"


class DirectoryResolver(SchemaResolver):
    """Schemas as files ``<directory>/<id>.avsc``."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        if not self.directory.is_dir():
            msg = f"schema directory {self.directory} does not exist; create it with one <id>.avsc file per schema"
            raise ConfigurationError(msg)

    def resolve(self, schema_id: int) -> str | None:
        path = self.directory / f"{schema_id}.avsc"
        return path.read_text() if path.is_file() else None

    def __repr__(self) -> str:
        return f"DirectoryResolver({str(self.directory)!r})"


class RegistryResolver(SchemaResolver):
    """A Confluent-compatible schema registry at ``url`` (e.g. ``http://127.0.0.1:8081``).

    ``bearer_token`` sends ``Authorization: Bearer <token>`` (the control plane's API needs a
    viewer token); ``headers`` adds any other header (e.g. Basic auth for Confluent Cloud).
    """

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 10.0,
        attempts: int = 3,
        bearer_token: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            msg = f"schema registry URL must start with http:// or https://, got {url!r}"
            raise ConfigurationError(msg)
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self.attempts = max(attempts, 1)
        self.headers = {"Accept": "application/vnd.schemaregistry.v1+json", **(headers or {})}
        if bearer_token is not None:
            self.headers["Authorization"] = f"Bearer {bearer_token}"

    def resolve(self, schema_id: int) -> str | None:
        address = f"{self.url}/schemas/ids/{int(schema_id)}"
        request = urllib.request.Request(address, headers=self.headers)  # noqa: S310 - http(s) checked above
        for attempt in range(self.attempts):
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s) as response:  # noqa: S310
                    body = json.loads(response.read())
                return str(body["schema"])
            except urllib.error.HTTPError as exc:
                exc.close()
                if exc.code == 404:
                    return None
                if exc.code in (401, 403):
                    msg = (
                        f"schema registry {self.url} refused the credentials for schema id {schema_id} "
                        f"(HTTP {exc.code}): pass bearer_token= (a viewer token) or headers="
                    )
                    raise SchemaRegistryUnavailable(msg) from None
                problem: Exception = exc
            except (urllib.error.URLError, OSError, ValueError, KeyError) as exc:
                problem = exc
            time.sleep(0.5 * 2**attempt)
        msg = f"schema registry {self.url} did not answer for schema id {schema_id}: {problem}"
        raise SchemaRegistryUnavailable(msg)

    def __repr__(self) -> str:
        return f"RegistryResolver({self.url!r})"


class StoreResolver(SchemaResolver):
    """The control plane's schema registry, read from its metadata store by global schema id.

    ``store`` is a store URL (``sqlite:///...``, ``postgresql://...``; opened on the first
    lookup, closed by :meth:`close`) or an open :class:`~stream_etl.control.store.Store`
    (the caller closes it). Versions of another data format than ``data_format`` resolve to
    None. A store that cannot be reached raises SchemaRegistryUnavailable (transient).
    """

    def __init__(self, store: str | Store, *, data_format: str = "AVRO") -> None:
        self._url = store if isinstance(store, str) else None
        self._store = None if isinstance(store, str) else store
        self.data_format = data_format

    def resolve(self, schema_id: int) -> str | None:
        from sqlalchemy.exc import OperationalError

        from stream_etl.control.errors import NotFound
        from stream_etl.control.registry import SchemaRegistry
        from stream_etl.control.store import Store

        try:
            if self._store is None:
                self._store = Store.open(self._url)
            found = SchemaRegistry(self._store).get_by_id(int(schema_id))
        except NotFound:
            return None
        except OperationalError as exc:
            msg = f"the schema registry's store {self!r} did not answer for schema id {schema_id}: {exc}"
            raise SchemaRegistryUnavailable(msg) from exc
        return found.definition if found.data_format == self.data_format else None

    def close(self) -> None:
        """Close the store this resolver opened from a URL."""
        if self._url is not None and self._store is not None:
            self._store.close()
            self._store = None

    def __repr__(self) -> str:
        where = self._url if self._url is not None else self._store.url if self._store is not None else "?"
        return f"StoreResolver({where!r})"
