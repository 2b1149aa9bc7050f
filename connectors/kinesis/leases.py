"""Shard leases: how several workers divide a stream's shards.

After the KCL's lease table, kept as one small JSON document per job (app id) and
stream, changed only by compare-and-swap of the whole document::

    {"version": 7,
     "workers": {"<worker id>": <heartbeat counter>, ...},
     "leases": {"shardId-000000000001": {"owner": "<worker id>" | null,
                                         "finished": false,
                                         "wanted_by": "<worker id>" | null,
                                         "tip": <position> | null}, ...}}

- **Heartbeats.** Every worker bumps its counter every ``lease_duration / 3`` from a
  thread of its own. A worker is dead once its counter has not moved for
  ``lease_duration`` *by the observer's own clock* (no clock sync needed, as in the KCL);
  whoever sees that frees the dead worker's leases and takes them.
- **Balance.** ``target = ceil(eligible shards / live workers)``. A worker below target
  takes free shards; when none is free it asks the most loaded worker for one
  (``wanted_by``): that owner stops reading the shard, commits what it holds and frees
  it, reserved for the asker.
- **Lineage.** A shard is eligible once it is not finished and every parent is finished
  (or gone from the stream). The owner of a closed shard marks it finished once the
  position of its last record is committed in the sink, so children start after their
  parents, on whichever worker.
- **Tips.** Each round an owner publishes the position just past the last record of each
  of its shards that it saw at the tip (a read came back empty, nothing behind). An
  until-caught-up worker stops once every unfinished shard's tip, its own or published,
  is committed in the sink, whoever committed it.

Leases only divide the work: exactly-once never depends on them. Two workers reading one
shard at once (a stalled worker whose lease was taken) is fenced by the sink's commit
protocol (invariant 4 in docs/ARCHITECTURE.md).

Stores: :class:`FileLeaseStore` (a directory; workers on one machine, tests) and
:class:`S3LeaseStore` (numbered objects created with ``If-None-Match: *``, the conditional
write Delta's own commits rely on).
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import json
import math
import os
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stream_etl.errors import ConfigurationError, SourceUnavailable
from stream_etl.settings import Settings

try:
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError
except ImportError as exc:  # pragma: no cover - depends on the install
    msg = "the Kinesis connector needs boto3: pip install 'stream-etl[kinesis]'"
    raise ImportError(msg) from exc


@dataclass
class LeaseDoc:
    """The lease table of one job and stream; ``version`` is the one it was read at."""

    version: int = 0
    workers: dict[str, int] = field(default_factory=dict)
    leases: dict[str, dict[str, Any]] = field(default_factory=dict)

    def owner(self, shard: str) -> str | None:
        lease = self.leases.get(shard)
        return lease.get("owner") if lease else None

    def owned_by(self, worker: str) -> set[str]:
        return {s for s, lease in self.leases.items() if lease.get("owner") == worker}

    def to_json(self) -> bytes:
        return json.dumps(
            {"version": self.version, "workers": self.workers, "leases": self.leases}, sort_keys=True
        ).encode()

    @classmethod
    def from_json(cls, data: bytes) -> LeaseDoc:
        raw = json.loads(data)
        return cls(int(raw["version"]), dict(raw.get("workers", {})), dict(raw.get("leases", {})))


class LeaseStore(ABC):
    """Where a lease table lives; every write is a compare-and-swap on the version."""

    @abstractmethod
    def read(self) -> LeaseDoc:
        """The current table (version 0 and empty when none was written yet)."""

    @abstractmethod
    def write(self, doc: LeaseDoc) -> bool:
        """Store ``doc`` as version ``doc.version + 1`` if the stored one is still ``doc.version``."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources."""


class FileLeaseStore(LeaseStore):
    """``<directory>/<app id>/<stream>.json``, swapped under an exclusive ``flock``."""

    def __init__(self, directory: str | Path, app_id: str, stream: str) -> None:
        folder = Path(directory) / app_id
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / f"{stream}.json"
        self._lock = folder / f"{stream}.lock"

    def read(self) -> LeaseDoc:
        try:
            return LeaseDoc.from_json(self.path.read_bytes())
        except FileNotFoundError:
            return LeaseDoc()

    def write(self, doc: LeaseDoc) -> bool:
        with self._lock.open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if self.read().version != doc.version:
                return False
            stored = copy.deepcopy(doc)
            stored.version += 1
            temporary = self.path.with_suffix(f".{os.getpid()}.tmp")
            temporary.write_bytes(stored.to_json())
            temporary.replace(self.path)
            return True


class S3LeaseStore(LeaseStore):
    """``s3://bucket/prefix/<app id>/<stream>/<version, 20 digits>.json``.

    Version n+1 is created with ``If-None-Match: *``, so of two workers writing on top of
    version n one wins and the other reads again. Versions older than the last 10 are
    deleted as new ones land.
    """

    KEEP = 10

    def __init__(self, uri: str, app_id: str, stream: str, settings: Settings) -> None:
        bucket, _, prefix = uri.removeprefix("s3://").partition("/")
        if not bucket:
            msg = f"lease URI {uri!r} names no bucket; use s3://bucket/prefix"
            raise ConfigurationError(msg)
        self.bucket = bucket
        self.prefix = "/".join(p for p in (prefix.strip("/"), app_id, stream) if p) + "/"
        self.client = boto3.client("s3", **settings.s3_client_options())

    def _key(self, version: int) -> str:
        return f"{self.prefix}{version:020d}.json"

    def _versions(self) -> list[int]:
        versions: list[int] = []
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix)
        for page in pages:
            for item in page.get("Contents", []):
                name = str(item["Key"])[len(self.prefix) :]
                if name.endswith(".json") and name[:-5].isdigit():
                    versions.append(int(name[:-5]))
        return sorted(versions)

    def read(self) -> LeaseDoc:
        for _ in range(5):
            try:
                versions = self._versions()
                if not versions:
                    return LeaseDoc()
                response = self.client.get_object(Bucket=self.bucket, Key=self._key(versions[-1]))
                with contextlib.closing(response["Body"]) as body:
                    return LeaseDoc.from_json(body.read())
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") not in ("NoSuchKey", "404"):
                    raise _unavailable(exc) from exc  # else pruned meanwhile: list again
            except BotoCoreError as exc:
                raise _unavailable(exc) from exc
        msg = f"could not read the lease table at s3://{self.bucket}/{self.prefix}"
        raise SourceUnavailable(msg)

    def write(self, doc: LeaseDoc) -> bool:
        stored = copy.deepcopy(doc)
        stored.version += 1
        try:
            self.client.put_object(
                Bucket=self.bucket, Key=self._key(stored.version), Body=stored.to_json(), IfNoneMatch="*"
            )
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code"))
            if code in ("PreconditionFailed", "412", "ConditionalRequestConflict", "409"):
                return False
            raise _unavailable(exc) from exc
        except BotoCoreError as exc:
            raise _unavailable(exc) from exc
        old = [{"Key": self._key(v)} for v in range(max(stored.version - 3 * self.KEEP, 1), stored.version - self.KEEP)]
        if old:
            with contextlib.suppress(ClientError, BotoCoreError):
                self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": old, "Quiet": True})
        return True

    def close(self) -> None:
        self.client.close()


def _unavailable(exc: Exception) -> SourceUnavailable:
    return SourceUnavailable(f"the lease table is unreachable: {exc}")


def open_lease_store(uri: str, app_id: str, stream: str, settings: Settings) -> LeaseStore:
    if uri.startswith("s3://"):
        return S3LeaseStore(uri, app_id, stream, settings)
    if "://" in uri and not uri.startswith("file://"):
        msg = f"lease URI {uri!r}: use s3://bucket/prefix or a local directory"
        raise ConfigurationError(msg)
    return FileLeaseStore(uri.removeprefix("file://"), app_id, stream)


# Deciding -------------------------------------------------------------------------


class Liveness:
    """Which workers are alive, judged by their heartbeat counters moving on our clock."""

    def __init__(self, me: str, lease_duration_s: float) -> None:
        self.me = me
        self.lease_duration_s = lease_duration_s
        self._seen: dict[str, tuple[int, float]] = {}
        self._moved: set[str] = {me}
        self._lock = threading.Lock()  # observed from the fetch thread and the heartbeat thread

    def observe(self, doc: LeaseDoc, now: float | None = None) -> set[str]:
        now = time.monotonic() if now is None else now
        with self._lock:
            for worker, counter in doc.workers.items():
                seen = self._seen.get(worker)
                if seen is None or seen[0] != counter:
                    if seen is not None:
                        self._moved.add(worker)
                    self._seen[worker] = (counter, now)
            return {w for w in doc.workers if now - self._seen[w][1] < self.lease_duration_s} | {self.me}

    def proven(self, worker: str) -> bool:
        """Whether we saw ``worker``'s heartbeat move: a worker seen only once may have died
        just before, so what it published (a tip) is not to be relied on yet."""
        return worker in self._moved


def plan(
    doc: LeaseDoc,
    shards: Mapping[str, tuple[str, ...]],
    *,
    me: str,
    live: set[str],
    finished: Iterable[str] = (),
    release: Iterable[str] = (),
) -> LeaseDoc:
    """The next lease table: ``me`` heartbeats, frees dead workers' leases, marks ``finished``
    shards, frees ``release``, then takes (or asks for) its share of the eligible shards.

    ``shards`` maps every shard of the stream to its parents."""
    new = copy.deepcopy(doc)
    new.workers[me] = new.workers.get(me, 0) + 1
    for worker in [w for w in new.workers if w not in live]:
        del new.workers[worker]
    for shard in shards:
        new.leases.setdefault(shard, {"owner": None, "finished": False, "wanted_by": None})
    for shard in [s for s in new.leases if s not in shards and new.leases[s].get("finished")]:
        del new.leases[shard]  # gone from the stream (past its retention); kept while unfinished,
        # as another worker may have listed the stream after a resharding we have not seen yet
    for lease in new.leases.values():
        if lease.get("owner") not in live:
            lease["owner"] = None
        if lease.get("wanted_by") not in live:
            lease["wanted_by"] = None
    for shard in finished:
        if shard in new.leases:
            new.leases[shard].update(owner=None, finished=True, wanted_by=None)
    for shard in release:
        if shard in new.leases and new.leases[shard]["owner"] == me:
            new.leases[shard]["owner"] = None

    def done(shard: str) -> bool:
        return shard not in shards or shard not in new.leases or bool(new.leases[shard].get("finished"))

    eligible = [s for s in sorted(shards) if not done(s) and all(done(p) for p in shards[s])]
    if not eligible:
        return _reset_tips(doc, new)
    target = math.ceil(len(eligible) / len(live))
    mine = [s for s in eligible if new.leases[s]["owner"] == me]
    released = set(release)
    free = [
        s
        for s in eligible
        if new.leases[s]["owner"] is None and new.leases[s].get("wanted_by") in (None, me) and s not in released
    ]
    free.sort(key=lambda s: new.leases[s].get("wanted_by") != me)  # reserved for me first
    for shard in free[: max(target - len(mine), 0)]:
        new.leases[shard].update(owner=me, wanted_by=None)
        mine.append(shard)
    asked = any(new.leases[s].get("wanted_by") == me for s in eligible)
    if len(mine) < target and not asked:
        load: dict[str, list[str]] = {}
        for shard in eligible:
            owner = new.leases[shard]["owner"]
            if owner is not None and owner != me:
                load.setdefault(owner, []).append(shard)
        victims = sorted(load.items(), key=lambda item: (-len(item[1]), item[0]))
        if victims and len(victims[0][1]) > target:
            candidates = [s for s in victims[0][1] if new.leases[s].get("wanted_by") is None]
            if candidates:
                new.leases[candidates[-1]]["wanted_by"] = me
    return _reset_tips(doc, new)


def _reset_tips(before: LeaseDoc, after: LeaseDoc) -> LeaseDoc:
    """A tip published by a shard's owner means nothing once the shard changes hands."""
    for shard, lease in after.leases.items():
        if before.leases.get(shard, {}).get("owner") != lease.get("owner"):
            lease["tip"] = None
    return after
