"""Kinesis source on boto3: shards as partitions, leases to share them, cursors to resume.

Positions. A Kinesis sequence number (up to 128 bits) does not fit a Delta txn version
(a 64-bit integer), so the position of a record is a *per-shard counter*: 0 for the first
record read from the shard, +1 per (user) record. With every batch the reader hands the
sink a cursor per shard, ``"<position>:<sequence number>"`` of the shard's last record in
the batch, and the sink stores it in the same atomic commit as the positions (Delta: the
commit's metadata). On assignment the reader gets the stored position P and its cursor
back, and reads ``AFTER_SEQUENCE_NUMBER`` the cursor's sequence number with the counter at
P + 1. So every worker numbers a shard's records alike, and the commit protocol's
"drop rows at or below the stored position" holds for Kinesis as for Kafka.

Resharding. Closed shards are read to their end (GetRecords returns no next iterator);
once the position of their last record is committed the shard is marked *finished* in
the lease table, and only then do its children become eligible (read from their first
record, whatever ``start_from`` says). See :mod:`connectors.kinesis.leases`.

Columnar: a GetRecords response becomes a :class:`~stream_etl.records.Chunk` through
C-level ``map(itemgetter(...))`` calls; the only per-record Python is botocore's own
parsing and, for KPL-aggregated records only, :mod:`connectors.kinesis.kpl`.
"""

from __future__ import annotations

import logging
import math
import os
import random
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from operator import itemgetter
from typing import Any

import pyarrow as pa
from pydantic import ValidationError

from connectors.kinesis import kpl
from connectors.kinesis.config import KinesisSourceConfig, MetadataField, StartFrom
from connectors.kinesis.leases import LeaseDoc, LeaseStore, Liveness, open_lease_store, plan
from stream_etl.context import RunContext
from stream_etl.errors import ConfigurationError, SourceError, SourceMissing, SourceUnavailable
from stream_etl.records import Batch, Chunk, PartitionRegistry, SourcePartition
from stream_etl.sources import AssignmentListener, Source, SourceReader
from stream_etl.stage import name_os_thread

try:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError
except ImportError as exc:  # pragma: no cover - depends on the install
    msg = "the Kinesis connector needs boto3: pip install 'stream-etl[kinesis]'"
    raise ImportError(msg) from exc

log = logging.getLogger(__name__)

_data, _seq, _key = itemgetter("Data"), itemgetter("SequenceNumber"), itemgetter("PartitionKey")
_arrival = itemgetter("ApproximateArrivalTimestamp")

#: Errors that mean "slow down": back off the shard and try again.
THROTTLED = frozenset({"ProvisionedThroughputExceededException", "LimitExceededException", "ThrottlingException"})
#: Longest pause of one shard after repeated throttling or network errors.
MAX_BACKOFF_S = 5.0


def format_cursor(position: int, sequence_number: str) -> str:
    return f"{position}:{sequence_number}"


def parse_cursor(cursor: str) -> tuple[int, str]:
    position, sep, sequence = cursor.partition(":")
    if not sep or not position.lstrip("-").isdigit() or not sequence:
        msg = f"stored Kinesis cursor {cursor!r} is not '<position>:<sequence number>'"
        raise SourceError(msg)
    return int(position), sequence


class KinesisSource(Source):
    """Read records from one Kinesis stream.

    Settings default to ``STREAM_ETL_KINESIS_*`` (endpoint, region, keys, lease URI).
    Workers of one job (app id) divide the shards through leases kept at ``lease_uri``:
    ``s3://bucket/prefix`` for workers on several machines, a directory for one machine
    (default ``.stream-etl/kinesis-leases``).
    """

    def __init__(
        self,
        stream: str,
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        start_from: StartFrom | datetime | dict[str, str] = "trim_horizon",
        metadata: Sequence[MetadataField] = (),
        lease_uri: str | None = None,
        lease_duration: timedelta = timedelta(seconds=10),
        worker_id: str | None = None,
        max_records_per_call: int = 10_000,
        idle_poll: timedelta = timedelta(milliseconds=250),
        list_shards_interval: timedelta = timedelta(seconds=10),
        connect_timeout_s: float = 15.0,
    ) -> None:
        try:
            self.config = KinesisSourceConfig(
                stream=stream,
                endpoint_url=endpoint_url,
                region=region,
                start_from=start_from,
                metadata=tuple(metadata),
                lease_uri=lease_uri,
                lease_duration=lease_duration,
                worker_id=worker_id,
                max_records_per_call=max_records_per_call,
                idle_poll=idle_poll,
                list_shards_interval=list_shards_interval,
                connect_timeout_s=connect_timeout_s,
            )
        except ValidationError as exc:
            msg = f"invalid KinesisSource settings: {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}"
            raise ConfigurationError(msg) from exc

    def describe(self) -> str:
        return f"kinesis stream {self.config.stream}"

    def open(self, ctx: RunContext, listener: AssignmentListener) -> KinesisReader:
        return KinesisReader(self.config, ctx, listener)


@dataclass(slots=True)
class _Shard:
    """Reading state of one owned shard."""

    sp: SourcePartition
    pid: int
    #: Position of the next record.
    counter: int
    #: Read after this sequence number (None: from the start position).
    after: str | None
    #: Highest position committed in the sink (-1: none).
    committed: int
    #: Sequence number of the record at position 0, once read (re-seeks to the start).
    first: str | None = None
    iterator: str | None = None
    #: A closed shard read to its end.
    ended: bool = False
    #: Last read came back empty at the tip.
    tip: bool = False
    ready_at: float = 0.0
    failures: int = 0
    #: Sequence number of the last record of each chunk handed out, by its position.
    chunk_ends: dict[int, str] = field(default_factory=dict)


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class KinesisReader(SourceReader):
    """Reads the shards this worker leases; see the module docstring."""

    ends_known_up_front = False

    def __init__(self, config: KinesisSourceConfig, ctx: RunContext, listener: AssignmentListener) -> None:
        self.config = config
        self.stream = config.stream
        self.listener = listener
        self.until_caught_up = ctx.mode == "until_caught_up"
        self.registry = PartitionRegistry()
        options: dict[str, Any] = ctx.settings.kinesis_client_options()
        if config.endpoint_url:
            options["endpoint_url"] = config.endpoint_url
        if config.region:
            options["region_name"] = config.region
        self.endpoint = options.get("endpoint_url", "AWS")
        self.client = boto3.client(
            "kinesis",
            **options,
            config=Config(
                connect_timeout=config.connect_timeout_s,
                read_timeout=max(config.connect_timeout_s, 30),
                retries={"mode": "standard", "total_max_attempts": 2},
            ),
        )
        self.me = config.worker_id or f"{socket.gethostname()}:{os.getpid()}:{os.urandom(3).hex()}"
        lease_uri = config.lease_uri or ctx.settings.kinesis_lease_uri or ".stream-etl/kinesis-leases"
        self.lease_s = config.lease_duration.total_seconds()
        self._check_stream()
        try:
            self.store: LeaseStore = open_lease_store(lease_uri, ctx.app_id, self.stream, ctx.settings)
        except BaseException:
            self.client.close()
            raise
        self.liveness = Liveness(self.me, self.lease_s)
        #: Every shard of the stream -> its parents, from ListShards.
        self._lineage: dict[str, tuple[str, ...]] = {}
        self._listed_at = -math.inf
        self._owned: dict[str, _Shard] = {}
        self._order: list[str] = []
        self._turn = 0
        self._finishing: set[str] = set()
        self._next_round = 0.0
        #: Ends other live workers published for the unfinished shards they own (None: some
        #: unfinished shard has no live owner that saw its tip yet).
        self._others: dict[SourcePartition, int] | None = None
        self._found: dict[SourcePartition, int] | None = None
        self._stop = threading.Event()
        self._heart: threading.Thread | None = None

    # Setup ------------------------------------------------------------------------

    def _check_stream(self) -> None:
        try:
            self.client.describe_stream_summary(StreamName=self.stream)
        except ClientError as exc:
            if _code(exc) == "ResourceNotFoundException":
                known = self._stream_names()
                msg = f"Kinesis stream {self.stream!r} does not exist at {self.endpoint}; existing streams: {known}"
                self.client.close()
                raise SourceMissing(msg, stream=self.stream) from exc
            self.client.close()
            msg = f"Kinesis at {self.endpoint} refused DescribeStreamSummary: {exc}"
            raise SourceUnavailable(msg, stream=self.stream) from exc
        except BotoCoreError as exc:
            self.client.close()
            msg = f"cannot reach Kinesis at {self.endpoint} ({exc}); check STREAM_ETL_KINESIS_ENDPOINT_URL"
            raise SourceUnavailable(msg, stream=self.stream) from exc

    def _stream_names(self) -> list[str]:
        try:
            return list(self.client.list_streams(Limit=20).get("StreamNames", []))
        except (ClientError, BotoCoreError):
            return []

    def _list_shards(self) -> None:
        lineage: dict[str, tuple[str, ...]] = {}
        kwargs: dict[str, Any] = {"StreamName": self.stream}
        while True:
            response = self.client.list_shards(**kwargs)
            for shard in response.get("Shards", []):
                parents = (shard.get("ParentShardId"), shard.get("AdjacentParentShardId"))
                lineage[shard["ShardId"]] = tuple(p for p in parents if p)
            token = response.get("NextToken")
            if not token:
                break
            kwargs = {"NextToken": token}
        self._lineage = lineage
        self._listed_at = time.monotonic()

    # Leases --------------------------------------------------------------------------

    def start(self) -> None:
        self._coordinate()
        self._heart = threading.Thread(target=self._heartbeats, name="se-kin-leases", daemon=True)
        self._heart.start()

    def _heartbeats(self) -> None:
        """Keep this worker alive in the lease table, whatever the fetch thread is doing."""
        name_os_thread("se-kin-leases")
        while not self._stop.wait(self.lease_s / 3):
            try:
                for _ in range(10):  # a compare-and-swap: a round of the fetch thread may win
                    doc = self.store.read()
                    if self._round_due(doc, self.liveness.observe(doc)):
                        self._next_round = 0.0  # the fetch thread runs a round at its next poll
                    doc.workers[self.me] = doc.workers.get(self.me, 0) + 1
                    if self.store.write(doc):
                        break
            except Exception as exc:  # noqa: BLE001 - the next beat retries
                log.warning("Kinesis lease heartbeat failed: %s", exc)

    def _round_due(self, doc: LeaseDoc, live: set[str]) -> bool:
        """A dead worker's shards to take, or one of ours asked for: act now, not next round."""
        for lease in doc.leases.values():
            owner = lease.get("owner")
            if owner is not None and owner not in live and not lease.get("finished"):
                return True
            if owner == self.me and lease.get("wanted_by") not in (None, self.me):
                return True
        return False

    def _coordinate(self) -> None:
        """One round: heartbeat, follow the stream's shards, hand off, finish, take leases."""
        now = time.monotonic()
        self._next_round = now + self.lease_s / 3
        try:
            if now - self._listed_at > self.config.list_shards_interval.total_seconds() or self._finishing:
                self._list_shards()
            for _ in range(5):
                if self._round():
                    break
        except (ClientError, BotoCoreError, SourceUnavailable) as exc:
            log.warning("Kinesis lease round failed (%s); retrying", exc)
            self._next_round = time.monotonic() + 1.0

    def _round(self) -> bool:
        doc = self.store.read()
        live = self.liveness.observe(doc)
        mine = doc.owned_by(self.me)
        handoff = {s for s in mine if (w := doc.leases[s].get("wanted_by")) and w != self.me and w in live}
        lost = set(self._owned) - mine
        if lost:
            log.warning("Kinesis shards %s were taken over (this worker looked dead); re-reading", sorted(lost))
        if handoff or lost:
            self._revoke_all()  # before the table frees them: the batch in hand commits first
        finishing = set(self._finishing)
        new = plan(doc, self._lineage, me=self.me, live=live, finished=finishing, release=handoff)
        for shard_id in new.owned_by(self.me) & set(self._owned):  # publish our tips (until-caught-up)
            shard = self._owned[shard_id]
            new.leases[shard_id]["tip"] = shard.counter if shard.tip and not shard.ended else None
        if not self.store.write(new):
            return False
        if handoff:
            log.info(
                "handed Kinesis shards %s over to %s", sorted(handoff), {doc.leases[s]["wanted_by"] for s in handoff}
            )
        for done in finishing:
            self._finishing.discard(done)
            self._drop(done)
            log.info("Kinesis shard %s finished: read to its end and committed", done)
        owned = new.owned_by(self.me)
        gained = sorted(owned - set(self._owned))
        if gained:
            self._assign(gained)
        self._others = self._published_tips(new, live)
        return True

    def _published_tips(self, doc: LeaseDoc, live: set[str]) -> dict[SourcePartition, int] | None:
        tips: dict[SourcePartition, int] = {}
        for shard_id, lease in doc.leases.items():
            owner, tip = lease.get("owner"), lease.get("tip")
            if lease.get("finished") or owner == self.me:
                continue
            if owner is None or owner not in live or not self.liveness.proven(owner) or tip is None:
                return None  # a dead worker's stale tip must not end the run: wait for its lease
            if tip > 0:  # an empty shard has nothing to wait for
                tips[SourcePartition(self.stream, shard_id)] = int(tip)
        return tips

    def _drop(self, shard: str) -> None:
        self._owned.pop(shard, None)
        self._order = sorted(self._owned)

    def _revoke_all(self) -> None:
        """Eager, as a Kafka rebalance: drop every shard, then take back the ones kept (their
        positions are read again from the sink, so nothing read but uncommitted is lost)."""
        if not self._owned:
            return
        partitions = [s.sp for s in self._owned.values()]
        self._owned.clear()
        self._order = []
        self._finishing.clear()
        self.listener.on_revoked(partitions)

    def _assign(self, shards: list[str]) -> None:
        sps = [SourcePartition(self.stream, s) for s in shards]
        resume = self.listener.on_assigned(sps)
        cursors = self.listener.resume_cursors([sp for sp in sps if sp in resume]) if resume else {}
        for sp in sps:
            shard = str(sp.partition)
            pid = self.registry.id_of(sp)
            if sp in resume:
                cursor = cursors.get(sp)
                if cursor is None:
                    msg = (
                        f"{sp} has a stored position ({resume[sp] - 1}) but no stored Kinesis cursor; "
                        "was the table written by another source? use a new app id or table"
                    )
                    raise SourceError(msg, stream=self.stream)
                position, sequence = parse_cursor(cursor)
                if position != resume[sp] - 1:
                    msg = (
                        f"{sp}: reading must resume at position {resume[sp]}, and the stored cursor is at "
                        f"{position}; Kinesis shards resume only right after a stored cursor"
                    )
                    raise SourceError(msg, stream=self.stream)
                state = _Shard(sp, pid, counter=position + 1, after=sequence, committed=position)
            else:
                state = _Shard(sp, pid, counter=0, after=None, committed=-1)
            self._owned[shard] = state
        self._order = sorted(self._owned)
        log.info("Kinesis worker %s reads shards %s", self.me, self._order)

    # Reading --------------------------------------------------------------------------

    def poll(self, max_records: int, timeout: float) -> Chunk | None:
        try:
            if time.monotonic() >= self._next_round:
                self._coordinate()
            shard = self._next_ready()
            if shard is None:
                waits = [s.ready_at for s in self._owned.values() if not s.ended]
                wait = min([*waits, self._next_round]) - time.monotonic()
                time.sleep(max(min(wait, timeout), 0.0))
                return None
            return self._read(shard, max_records)
        finally:
            self._found = self._compute_found()

    def _next_ready(self) -> _Shard | None:
        now = time.monotonic()
        for _ in range(len(self._order)):
            self._turn = (self._turn + 1) % len(self._order)
            shard = self._owned[self._order[self._turn]]
            if not shard.ended and shard.ready_at <= now:
                return shard
        return None

    def _start_args(self, shard: _Shard) -> dict[str, Any]:
        if shard.after is not None:
            return {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "StartingSequenceNumber": shard.after}
        if shard.first is not None:
            return {"ShardIteratorType": "AT_SEQUENCE_NUMBER", "StartingSequenceNumber": shard.first}
        shard_id = str(shard.sp.partition)
        if any(p in self._lineage for p in self._lineage.get(shard_id, ())):
            return {"ShardIteratorType": "TRIM_HORIZON"}  # a child: from its first record
        start = self.config.start_from
        if isinstance(start, datetime):
            return {"ShardIteratorType": "AT_TIMESTAMP", "Timestamp": start}
        if isinstance(start, dict):
            if shard_id in start:
                return {"ShardIteratorType": "AT_SEQUENCE_NUMBER", "StartingSequenceNumber": start[shard_id]}
            return {"ShardIteratorType": "TRIM_HORIZON"}
        return {"ShardIteratorType": "LATEST" if start == "latest" else "TRIM_HORIZON"}

    def _backoff(self, shard: _Shard, why: str) -> None:
        shard.failures += 1
        delay = min(0.1 * 2**shard.failures, MAX_BACKOFF_S) * random.uniform(0.5, 1.0)  # noqa: S311 - jitter
        shard.ready_at = time.monotonic() + delay
        log.log(
            logging.DEBUG if shard.failures < 4 else logging.WARNING, "%s: %s; backing off %.2fs", shard.sp, why, delay
        )

    def _read(self, shard: _Shard, max_records: int) -> Chunk | None:
        shard_id = str(shard.sp.partition)
        limit = min(max_records, self.config.max_records_per_call)
        try:
            if shard.iterator is None:
                args = self._start_args(shard)
                shard.iterator = self.client.get_shard_iterator(StreamName=self.stream, ShardId=shard_id, **args)[
                    "ShardIterator"
                ]
            response = self.client.get_records(ShardIterator=shard.iterator, Limit=limit)
        except ClientError as exc:
            code = _code(exc)
            if code in THROTTLED:
                self._backoff(shard, f"throttled ({code})")
            elif code == "ExpiredIteratorException":
                shard.iterator = None  # re-acquired after the last record read
                log.info("%s: shard iterator expired; re-acquiring", shard.sp)
            elif code == "ResourceNotFoundException":
                msg = f"Kinesis stream {self.stream!r} or shard {shard_id} disappeared: {exc}"
                raise SourceMissing(msg, stream=self.stream) from exc
            else:
                shard.iterator = None
                self._backoff(shard, f"{code}: {exc}")
            return None
        except BotoCoreError as exc:
            self._backoff(shard, f"Kinesis unreachable ({exc})")
            return None
        shard.failures = 0
        records: list[dict[str, Any]] = response.get("Records", [])
        shard.iterator = response.get("NextShardIterator")
        shard.ended = shard.iterator is None
        behind = response.get("MillisBehindLatest")
        if records:
            shard.tip = False
            if behind == 0 and len(records) < limit:  # at the tip: no hurry (5 reads/s per shard)
                shard.ready_at = time.monotonic() + self.config.idle_poll.total_seconds()
            chunk = self._chunk(shard, records)
            self._maybe_finish(shard)
            return chunk
        self._maybe_finish(shard)
        shard.ready_at = time.monotonic() + self.config.idle_poll.total_seconds()
        if (shard.ended or behind == 0) and not shard.tip:
            shard.tip = True
            if self.until_caught_up:  # the fetcher closes the batch once every shard is at its end
                return Chunk(values=[], pids=[], positions=[], nbytes=0, ends={shard.pid: shard.counter})
        return None

    def _chunk(self, shard: _Shard, records: list[dict[str, Any]]) -> Chunk:
        values: list[bytes] = list(map(_data, records))
        wanted = self.config.metadata
        keys: list[str] | None = None
        origin: list[int] | None = None
        if kpl.any_aggregated(values):
            keys = list(map(_key, records))
            values, keys, origin, _ = kpl.expand(values, keys)
        n = len(values)
        start = shard.counter
        shard.counter += n
        last_sequence = str(records[-1]["SequenceNumber"])
        if start == 0 and shard.first is None and shard.after is None:
            shard.first = str(records[0]["SequenceNumber"])
        shard.after = last_sequence
        shard.chunk_ends[shard.counter - 1] = last_sequence
        ends = {shard.pid: shard.counter} if shard.ended and self.until_caught_up else {}
        metadata: dict[str, list[Any]] = {}
        if "sequence_number" in wanted:
            sequences = list(map(_seq, records))
            metadata["sequence_number"] = sequences if origin is None else [sequences[i] for i in origin]
        if "partition_key" in wanted:
            metadata["partition_key"] = keys if keys is not None else list(map(_key, records))
        if "arrival_time" in wanted:
            arrivals = list(map(_arrival, records))
            metadata["arrival_time"] = arrivals if origin is None else [arrivals[i] for i in origin]
        return Chunk(
            values=values,  # type: ignore[arg-type]
            pids=[shard.pid] * n,
            positions=list(range(start, start + n)),
            nbytes=sum(map(len, values)),
            metadata=metadata,
            ends=ends,
            cursors={shard.pid: format_cursor(shard.counter - 1, last_sequence)},
        )

    def _maybe_finish(self, shard: _Shard) -> None:
        """A closed shard read to its end is finished once its last position is committed."""
        if shard.ended and shard.committed >= shard.counter - 1:
            shard_id = str(shard.sp.partition)
            if shard_id not in self._finishing:
                self._finishing.add(shard_id)
                self._next_round = 0.0  # tell the lease table now: the children wait for it

    def _compute_found(self) -> dict[SourcePartition, int] | None:
        """Once every unfinished shard of the stream was seen at its tip, by us or by its live
        owner (who publishes it in the lease table): those ends. A closed shard read to its end
        does not count until it is finished (its children come next). The run loop then waits
        until the sink's stored positions reach them, whoever commits."""
        others = self._others
        if others is None or self._finishing:
            return None
        if any(s.ended or not s.tip for s in self._owned.values()):
            return None
        return {**others, **{s.sp: s.counter for s in self._owned.values()}}

    def found_ends(self) -> dict[SourcePartition, int] | None:
        return self._found

    def seek(self, positions: dict[SourcePartition, int | None]) -> None:
        missing: list[SourcePartition] = []
        for sp, target in positions.items():
            shard = self._owned.get(str(sp.partition))
            if shard is None:
                continue
            shard.iterator, shard.ended, shard.tip, shard.ready_at, shard.failures = None, False, False, 0.0, 0
            if target is None or target == 0:
                shard.counter, shard.after = 0, None
            elif target - 1 in shard.chunk_ends:
                shard.counter, shard.after = target, shard.chunk_ends[target - 1]
            else:
                missing.append(sp)
                shard.counter = target
        if missing:
            cursors = self.listener.resume_cursors(missing)
            for sp in missing:
                shard = self._owned[str(sp.partition)]
                cursor = cursors.get(sp)
                position, sequence = parse_cursor(cursor) if cursor else (None, "")
                if position != shard.counter - 1:
                    msg = f"cannot seek {sp} to position {shard.counter}: no cursor for position {shard.counter - 1}"
                    raise SourceError(msg, stream=self.stream)
                shard.after = sequence

    def assignment(self) -> list[SourcePartition]:
        return sorted(s.sp for s in self._owned.values())

    def end_positions(self) -> dict[SourcePartition, int]:
        return {}  # a shard's end is only known when a read comes back empty (found_ends)

    def commit(self, positions: dict[SourcePartition, int]) -> None:
        for sp, position in positions.items():
            shard = self._owned.get(str(sp.partition))
            if shard is None:
                continue
            shard.committed = max(shard.committed, position)
            for done in [p for p in shard.chunk_ends if p < shard.committed]:
                del shard.chunk_ends[done]
            self._maybe_finish(shard)

    def metadata_columns(self, batch: Batch, rows: pa.Int32Array) -> dict[str, pa.Array]:
        wanted = self.config.metadata
        columns: dict[str, pa.Array] = {}
        if not wanted:
            return columns
        pids = batch.pids.take(rows)
        partitions = [self.registry.partition(i) for i in range(len(self.registry))]
        if "stream" in wanted:
            columns["_stream"] = pa.array([p.stream for p in partitions], pa.string()).take(pids)
        if "shard" in wanted:
            columns["_shard"] = pa.array([str(p.partition) for p in partitions], pa.string()).take(pids)
        if "sequence_number" in wanted:
            columns["_sequence_number"] = pa.array(batch.metadata["sequence_number"], pa.string()).take(rows)
        if "partition_key" in wanted:
            columns["_partition_key"] = pa.array(batch.metadata["partition_key"], pa.string()).take(rows)
        if "arrival_time" in wanted:
            stamps = pa.array(batch.metadata["arrival_time"], pa.timestamp("ms", tz="UTC"))
            columns["_arrival_time"] = stamps.take(rows)
        return columns

    def close(self) -> None:
        """Free this worker's leases (others take them at once) and close the clients."""
        self._stop.set()
        if self._heart is not None:
            self._heart.join(timeout=30)
        try:
            for _ in range(10):
                doc = self.store.read()
                doc.workers.pop(self.me, None)
                for shard in self._finishing:
                    if shard in doc.leases:
                        doc.leases[shard].update(finished=True, owner=None, wanted_by=None)
                for lease in doc.leases.values():
                    if lease.get("owner") == self.me:
                        lease["owner"] = None
                    if lease.get("wanted_by") == self.me:
                        lease["wanted_by"] = None
                if self.store.write(doc):
                    break
        except Exception as exc:  # noqa: BLE001 - the leases expire anyway
            log.warning("releasing Kinesis leases failed (%s); they expire in %.0fs", exc, self.lease_s)
        finally:
            self.store.close()
            self.client.close()

    def __repr__(self) -> str:
        return f"<KinesisReader {self.stream} at {self.endpoint} as {self.me}>"


__all__ = ["KinesisReader", "KinesisSource", "LeaseDoc", "format_cursor", "parse_cursor"]
