"""The run loop: poll -> decode -> batch -> transform -> write -> commit.

    open every sink; open the source (partitions get assigned: resume from the
        primary sink's stored positions + 1)
    start the fetch thread (poll, batch, queue) and the prepare thread
        (decode with Arrow's JSON reader, run the topology's steps; bad records
        and failing rows -> dead letters), each a stage with a bounded queue
    loop:
        batch = next prepared batch                 # prepared while we commit
        while a group join's verdict is awaited (records read during the join): stage it
            (the primary sink writes its rows unreferenced) and take the next; once the
            verdict keeps them, commit every staged batch at once
        drop it if a rebalance or re-seek made it stale
        rows per sink = conform to the sink's schema (failing rows -> dead letters)
        commit dead letters, then secondary sinks, then the primary sink,
            each one atomic commit of rows + positions (see checkpoint.py)
        on PositionConflict: drop the batch, re-read positions, re-seek
        on a transient sink error: retry that commit with backoff, on a fresh
            snapshot, within the retry budget (stream_etl/retry.py)
        tell the source (Kafka group offsets, for lag tooling only)
        in until-caught-up mode: stop once every partition reached its end

Stopping (SIGTERM, SIGINT, ``stop``) finishes the batch in hand and exits; the
table is never left half-written because every commit is atomic.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from stream_etl import faults
from stream_etl.checkpoint import CommitPlan, plan_commit
from stream_etl.context import RunContext
from stream_etl.dead_letters import dead_letter_table
from stream_etl.errors import ConfigurationError, PositionConflict, TransientError
from stream_etl.fetcher import Fetcher
from stream_etl.metrics import RunStats, since_launch
from stream_etl.prepare import Prepared, Preparer
from stream_etl.records import Batch, PartitionRegistry, SourcePartition
from stream_etl.retry import Backoff, retry_transient
from stream_etl.sinks import SinkWriter, Snapshot, Staged
from stream_etl.sources import SourceReader
from stream_etl.state import FileStateStore, MemoryStateStore, StateKeeper, StateStore
from stream_etl.thresholds import ErrorThresholds
from stream_etl.topology import Topology
from stream_etl.transforms import Step, run_step

log = logging.getLogger(__name__)

#: How often an idle until-caught-up run re-reads the stored positions of
#: partitions other workers own.
_IDLE_REFRESH_S = 1.0


@dataclass(frozen=True, slots=True)
class RunSummary:
    """What a run did, for the CLI and tests."""

    app_id: str
    caught_up: bool
    stats: dict[str, Any]
    sinks: dict[str, dict[str, Any]] = field(default_factory=dict)


class _Conform(Step):
    """A sink's schema alignment, run as a step so failing rows are isolated."""

    kind = "conform"

    def __init__(self, name: str, writer: SinkWriter, snapshot: Snapshot) -> None:
        super().__init__()
        self.name = f"sink:{name}"
        self.writer, self.snapshot = writer, snapshot

    def apply(self, table: pa.Table) -> pa.Table:
        return self.writer.conform(table, self.snapshot)


@dataclass(slots=True)
class _Target:
    name: str
    writer: SinkWriter
    required: bool


@dataclass(frozen=True, slots=True)
class _StagedBatch:
    """A batch whose rows the primary sink is writing or wrote ahead of their commit (see
    RunLoop._stage): what its commit and its accounting need, without the batch's records."""

    write: Future[Staged]
    schema: pa.Schema
    #: The plan's positions and lineage, not its rows (the write holds them until written).
    positions: dict[SourcePartition, int]
    lineage: pa.Array | None
    replayed: pa.Array | None
    records: int
    nbytes: int
    generation: int
    last_positions: dict[int, int]
    ends: dict[int, int]
    decode_s: float
    transform_s: float
    batches: int = 1


#: Batches staged at once (their files written concurrently: each write mostly waits on storage).
_STAGE_WRITERS = 2
#: At most this many batches are staged while a verdict is awaited (a join that never ends
#: must not stage a whole backlog); later ones wait for the verdict.
_MAX_STAGED = 16


class RunLoop:
    """Runs one topology until stopped or, in until-caught-up mode, caught up."""

    def __init__(
        self,
        topology: Topology,
        ctx: RunContext,
        *,
        stop: threading.Event | None = None,
        on_batch: Callable[[RunStats], None] | None = None,
        sink_retry_timeout_s: float | None = None,
    ) -> None:
        topology.validate()
        self.topology = topology
        self.ctx = ctx
        self.stop_event = stop or threading.Event()
        self.on_batch = on_batch
        #: How long a sink may keep failing transiently (see stream_etl.retry).
        self.sink_retry_timeout_s = (
            ctx.settings.sink_retry_timeout_s if sink_retry_timeout_s is None else sink_retry_timeout_s
        )
        self.stats = RunStats()
        self.thresholds = ErrorThresholds(topology.max_errors, topology.step_max_errors)
        self._targets: dict[SourcePartition, int] = {}
        self._reached: dict[SourcePartition, int] = {}
        self._min_generation = 0
        self._reader_registry = PartitionRegistry()
        self._store: StateStore = MemoryStateStore()
        #: Batches read during a group join whose rows the primary sink wrote ahead (see _stage).
        self._staged: list[_StagedBatch] = []
        self._staging_snapshot: Snapshot | None = None
        self._stage_pool: ThreadPoolExecutor | None = None
        #: The exact end positions, while another thread finds them (until-caught-up runs).
        self._exact_ends: Future[dict[SourcePartition, int]] | None = None
        #: Called once, right after the source started reading (a Kafka consumer subscribed):
        #: start-up work that can wait for it (the CLI's garbage collector tuning).
        self.on_started: Callable[[], None] | None = None

    def stop(self) -> None:
        self.stop_event.set()

    def run(self) -> RunSummary:
        topology, ctx = self.topology, self.ctx
        for node in topology.steps():
            if node.step is not None:
                node.step.open(ctx)
        sinks = [_Target(n.name, n.sink.open(ctx), i == 0) for i, n in enumerate(topology.sink_nodes) if n.sink]
        dead_sink = topology.dead_letter_sink()
        source_node = topology.source_node
        if dead_sink is None or source_node.source is None or source_node.format is None:
            msg = f"topology {topology.name!r} is incomplete; call validate() for details"
            raise ConfigurationError(msg)
        dead = _Target("dead_letters", dead_sink.open(ctx), False)
        primary = sinks[0]
        keeper = self._state_keeper(primary, topology, ctx)
        fetcher = Fetcher(primary.writer, topology.limits, keeper, retry_timeout_s=self.sink_retry_timeout_s)
        log.info("opening %s", source_node.source.describe())
        reader = source_node.source.open(ctx, fetcher)
        fetcher.attach(reader)
        self._reader_registry = reader.registry
        if keeper is not None:
            keeper.registry = reader.registry
        preparer = Preparer(fetcher, topology, source_node.format, reader, keeper)
        caught_up = False

        def start_stages() -> None:
            if fetcher.ident is None:
                fetcher.start()
                preparer.start()

        try:
            if ctx.mode == "until_caught_up":
                if not self._prepare_targets(reader, primary.writer, start_stages):
                    return self._summary(True, sinks, dead)  # nothing to do: never joined the group
            else:
                self._start_reader(reader)
            start_stages()
            caught_up = self._loop(fetcher, preparer, reader, sinks, dead)
        finally:
            if fetcher.ident is None:
                reader.close()  # the fetch thread closes it when it ran
            preparer.stop()
            if preparer.is_alive():
                preparer.join(timeout=60)
            fetcher.stop()
            if fetcher.is_alive():
                fetcher.join(timeout=60)
            if self._stage_pool is not None:  # writes of batches never committed: unreferenced files
                self._stage_pool.shutdown(wait=True, cancel_futures=True)
            for target in (*sinks, dead):
                target.writer.close()
        return self._summary(caught_up, sinks, dead)

    def _start_reader(self, reader: SourceReader) -> None:
        """Start reading (a Kafka group consumer subscribes: the broker answers its join ~3 s later)."""
        reader.start()
        if log.isEnabledFor(logging.DEBUG):
            log.debug("reader started %s", since_launch())
        if self.on_started is not None:
            on_started, self.on_started = self.on_started, None
            on_started()

    def _prepare_targets(self, reader: SourceReader, primary: SinkWriter, start_stages: Callable[[], None]) -> bool:
        """Find the end positions to reach and start the reader; False when nothing is left.

        Finding exact ends takes a few hundred ms. When a quick estimate already shows
        records to read, the reader starts first (joining a group takes seconds) and the
        exact ends are found meanwhile: on another thread, with the fetch and prepare stages
        reading and the loop committing, when the reader allows it (``ends_while_polling``;
        the run is caught up only against the exact ends); otherwise they are found first,
        so that a run with nothing to do exits without joining. Sources whose ends are only
        found while reading (Kinesis) always start; :meth:`_caught_up` asks them for their ends.
        """
        if not reader.ends_known_up_front:
            self._start_reader(reader)
            return True
        self._targets = reader.rough_end_positions()
        self._refresh_reached(primary)
        clearly_behind = any(self._reached.get(sp, -1) < end for sp, end in self._targets.items())
        if clearly_behind:
            self._start_reader(reader)
            if reader.ends_while_polling:
                start_stages()
                self._find_ends_meanwhile(reader)  # the loop commits meanwhile
                return True
        behind = self._target(reader.end_positions(), primary)
        if not behind and not clearly_behind:
            return False
        if not clearly_behind:
            self._start_reader(reader)
        return True

    def _find_ends_meanwhile(self, reader: SourceReader) -> None:
        ends: Future[dict[SourcePartition, int]] = Future()

        def find() -> None:
            try:
                ends.set_result(reader.end_positions())
            except BaseException as exc:  # noqa: BLE001 - raised on the loop's thread by _settle_targets
                ends.set_exception(exc)

        self._exact_ends = ends
        threading.Thread(target=find, name="se-ends", daemon=True).start()

    def _settle_targets(self, primary: SinkWriter) -> None:
        """Take the exact end positions once :meth:`_find_ends_meanwhile` found them."""
        if self._exact_ends is None or not self._exact_ends.done():
            return
        found, self._exact_ends = self._exact_ends, None
        self._target(found.result(), primary)

    def _target(self, ends: dict[SourcePartition, int], primary: SinkWriter) -> int:
        """Aim at the exact ``ends``; how many partitions have records not yet committed."""
        self._targets = ends
        self._refresh_reached(primary)
        behind = sum(1 for sp, end in ends.items() if self._reached.get(sp, -1) < end)
        log.info("until caught up: %d partition(s) have records not yet committed", behind)
        return behind

    def _state_keeper(self, primary: _Target, topology: Topology, ctx: RunContext) -> StateKeeper | None:
        steps = topology.stateful_steps()
        if not steps:
            return None
        sink = topology.sink_nodes[0].sink
        store: StateStore | None = (
            FileStateStore(topology.state_uri, ctx.app_id, ctx.settings) if topology.state_uri else None
        )
        store = store or (sink.default_state_store(ctx) if sink is not None else None)
        if store is None:
            names = [s.name for s in steps]
            msg = f"steps {names} keep state, and the first sink keeps none: set Topology(state_uri=...)"
            raise ConfigurationError(msg)
        self._store = store
        return StateKeeper(store, [s.name for s in steps])

    def _summary(self, caught_up: bool, sinks: list[_Target], dead: _Target) -> RunSummary:
        return RunSummary(
            app_id=self.ctx.app_id,
            caught_up=caught_up,
            stats=self.stats.as_dict(),
            sinks={t.name: t.writer.summary() for t in (*sinks, dead)},
        )

    # The loop -----------------------------------------------------------------

    def _loop(
        self, fetcher: Fetcher, preparer: Preparer, reader: SourceReader, sinks: list[_Target], dead: _Target
    ) -> bool:
        last_refresh = 0.0
        while not self.stop_event.is_set():
            if self._staged and not reader.awaiting_assignment:
                with fetcher.commit_lock:
                    self._commit_staged(fetcher, reader, sinks[0])
            if self.ctx.mode == "until_caught_up":
                self._settle_targets(sinks[0].writer)
                if self._caught_up(fetcher, reader):
                    return True
            prepared = preparer.take(timeout=0.1)
            if prepared is None:
                if self.ctx.mode == "until_caught_up" and time.monotonic() - last_refresh > _IDLE_REFRESH_S:
                    last_refresh = time.monotonic()
                    self._refresh_reached(sinks[0].writer)
                continue
            batch = prepared.batch
            if reader.awaiting_assignment and self._stage(prepared, fetcher, reader, sinks):
                continue  # read during a group join: written ahead, committed after the verdict
            while reader.awaiting_assignment and not self.stop_event.is_set():
                time.sleep(0.005)  # read during a group join: not ours until the group says so
            try:
                with fetcher.commit_lock:
                    if self._staged:
                        self._commit_staged(fetcher, reader, sinks[0])
                    if batch.generation < max(fetcher.generation, self._min_generation):
                        self.stats.stale_batches += 1
                        continue
                    try:
                        self._process(prepared, fetcher, reader, sinks, dead)
                    except PositionConflict as exc:
                        log.warning("another writer moved the stored positions (%s); re-seeking", exc)
                        self.stats.conflicts += 1
                        self._min_generation = batch.generation + 1
                        fetcher.request_reseek()
            finally:
                fetcher.release(batch)  # its bytes leave the in-flight budget: the source may resume
                self.stats.source_pauses = fetcher.pauses
        return False

    def _process(
        self, prepared: Prepared, fetcher: Fetcher, reader: SourceReader, sinks: list[_Target], dead: _Target
    ) -> None:
        batch, outputs, failures = prepared.batch, dict(prepared.outputs), list(prepared.failures)
        started = time.perf_counter()
        snapshots = {t.name: self._retry(t.writer.snapshot, f"reading sink {t.name}") for t in sinks}
        for target in sinks:
            out = outputs.get(target.name)
            if out is not None:
                outputs[target.name] = run_step(
                    _Conform(target.name, target.writer, snapshots[target.name]), out, failures
                )
        self.thresholds.add(len(batch), failures)  # raises before anything of the batch is committed
        dead_rows = dead_letter_table(batch, failures, reader.registry, app_id=self.ctx.app_id) if failures else None
        faults.reached("before_commits")
        if prepared.snapshots:  # state before commits: a committed position always has its snapshot
            retry_transient(
                lambda: self._store.save(prepared.snapshots), "saving state", self.stop_event, self.sink_retry_timeout_s
            )
        faults.reached("state_saved")
        transformed = time.perf_counter()

        written: list[pa.Array] = []
        replayed: list[pa.Array] = []
        dead_plan = self._commit(dead, dead_rows, batch, None)
        for target in [*sinks[1:], sinks[0]]:
            if target.required:
                faults.reached("secondaries_committed")
            plan = self._commit(target, outputs.get(target.name), batch, snapshots.pop(target.name))
            if plan is not None:
                if plan.lineage is not None:
                    written.append(plan.lineage)
                if plan.replayed is not None:
                    replayed.append(plan.replayed)
                if target.required:
                    fetcher.committed(plan.positions)
                    faults.reached("primary_committed")
        for snapshot in prepared.snapshots:
            self._store.prune(snapshot.step, snapshot.partition, below=snapshot.position)
        self._advance(batch, reader)
        stats = self.stats
        stats.decode_s += prepared.decode_s
        stats.transform_s += prepared.transform_s + transformed - started
        stats.commit_s += time.perf_counter() - transformed
        dead_lineage = dead_plan.lineage if dead_plan is not None else None
        stats.account(len(batch), batch.nbytes, written, dead_lineage, replayed, batches=prepared.batches)
        log.debug(
            "committed %d records (%d batch(es)): decode %.0f ms, steps %.0f ms, commits %.0f ms",
            len(batch),
            prepared.batches,
            prepared.decode_s * 1000,
            (prepared.transform_s + transformed - started) * 1000,
            (time.perf_counter() - transformed) * 1000,
        )
        if self.on_batch is not None:
            self.on_batch(stats)

    # Staged batches (read during a group join) ------------------------------------

    def _stage(self, prepared: Prepared, fetcher: Fetcher, reader: SourceReader, sinks: list[_Target]) -> bool:
        """Have the primary sink write ``prepared``'s rows ahead of their commit, while the
        group's verdict on what was read during the join is awaited; False when it cannot
        (then the batch waits for the verdict and is processed as usual).

        Only the plain case is staged: one sink, no failed record, no state, no cursors, one
        schema for all staged batches. Up to two batches are written at once and one more
        waits for a writer (further batches wait here: each write holds its rows), and a batch's
        records are released once its rows are written, so the join is spent reading,
        transforming and writing everything there is, in bounded memory; the verdict then
        costs a single commit of every staged batch (:meth:`_commit_staged`), or, if the
        records are not this worker's, nothing but unreferenced files (VACUUM removes them).
        """
        batch = prepared.batch
        if len(sinks) != 1 or prepared.failures or prepared.snapshots or batch.cursors:
            return False
        if len(self._staged) >= _MAX_STAGED:
            return False
        target = sinks[0]
        if batch.generation < max(fetcher.generation, self._min_generation):
            return False  # stale: dropped the usual way
        started = time.perf_counter()
        try:
            if self._staging_snapshot is None:
                self._staging_snapshot = target.writer.snapshot()
            snapshot = self._staging_snapshot
            failures: list[Any] = []
            out = prepared.outputs.get(target.name)
            if out is not None:
                out = run_step(_Conform(target.name, target.writer, snapshot), out, failures)
            plan = None if failures else plan_commit(snapshot, out, batch, reader.registry, required=True)
            if plan is None or plan.table is None or plan.table.num_rows == 0:
                return False
            if self._staged and plan.table.schema != self._staged[0].schema:
                return False
            write = target.writer.stager(snapshot, plan.table)
        except TransientError as exc:
            log.debug("not staging a batch read during the join: %s", exc)
            return False
        if write is None:
            return False
        if self._stage_pool is None:
            self._stage_pool = ThreadPoolExecutor(_STAGE_WRITERS, thread_name_prefix="se-stage")
        while len(pending := [s.write for s in self._staged if not s.write.done()]) > _STAGE_WRITERS:
            wait(pending, return_when=FIRST_COMPLETED)  # one write waits for a writer at most: each holds its rows
        future = self._stage_pool.submit(write)
        generation, nbytes = batch.generation, batch.nbytes  # not the batch: its records are freed now

        def release(_done: Future[Staged]) -> None:  # its bytes leave the in-flight budget: the fetcher reads on
            fetcher.release_bytes(generation, nbytes)

        future.add_done_callback(release)
        self._staged.append(
            _StagedBatch(
                write=future,
                schema=plan.table.schema,
                positions=plan.positions,
                lineage=plan.lineage,
                replayed=plan.replayed,
                records=len(batch),
                nbytes=batch.nbytes,
                generation=batch.generation,
                last_positions=dict(batch.last_positions),
                ends=dict(batch.ends),
                decode_s=prepared.decode_s,
                transform_s=prepared.transform_s + time.perf_counter() - started,
                batches=prepared.batches,
            )
        )
        self.thresholds.add(len(batch), [])
        log.debug("staging a batch of %d records read during the join (%d rows)", len(batch), plan.table.num_rows)
        return True

    def _commit_staged(self, fetcher: Fetcher, reader: SourceReader, target: _Target) -> None:
        """Commit every staged batch in one commit of the primary sink, or drop them all when
        they are stale (the group gave the partitions to others), when a write failed, or when
        the stored positions moved since they were planned (then re-seek, as on a
        PositionConflict)."""
        staged, self._staged = self._staged, []
        planned, self._staging_snapshot = self._staging_snapshot, None
        if planned is None or any(s.generation < max(fetcher.generation, self._min_generation) for s in staged):
            self.stats.stale_batches += len(staged)
            log.info("dropping %d batch(es) staged during the join: the group reassigned partitions", len(staged))
            return
        written: list[Staged] = []
        for item in staged:
            try:
                written.append(item.write.result())
            except Exception as exc:  # noqa: BLE001 - any failed write: read it all again
                self._drop_staged(staged, fetcher, f"writing ahead failed: {exc}")
                return
        positions: dict[SourcePartition, int] = {}
        for item in staged:
            for sp, position in item.positions.items():
                positions[sp] = max(positions.get(sp, position), position)
        started = time.perf_counter()
        backoff = Backoff(f"committing to {target.name}", self.stop_event, timeout_s=self.sink_retry_timeout_s)
        failed = False
        faults.reached("before_commits")
        while True:
            snapshot = self._retry(target.writer.snapshot, f"reading sink {target.name}")
            if failed and _landed_positions(positions, snapshot):
                break  # the failed attempt did land
            moved = any(snapshot.position(sp) != planned.position(sp) for sp in positions)
            created = getattr(planned, "version", None) is None and getattr(snapshot, "version", None) is not None
            if moved or created:  # planned against another table state: those rows may not fit it
                self._drop_staged(staged, fetcher, "another writer committed to the table meanwhile")
                return
            try:
                target.writer.commit_staged(snapshot, written, positions)
            except PositionConflict as exc:
                self._drop_staged(staged, fetcher, str(exc))
                return
            except TransientError as exc:
                self.stats.retries += 1
                failed = True
                backoff.wait(exc)
                continue
            break
        fetcher.committed(positions)
        faults.reached("primary_committed")
        self.stats.committed()
        for item in staged:
            self._advance_to(item.last_positions, item.ends, reader)
            self.stats.decode_s += item.decode_s
            self.stats.transform_s += item.transform_s
            lineage = [item.lineage] if item.lineage is not None else []
            replayed = [item.replayed] if item.replayed is not None else []
            self.stats.account(item.records, item.nbytes, lineage, None, replayed, batches=item.batches)
        self.stats.commit_s += time.perf_counter() - started
        log.info(
            "committed %d batch(es) read and written during the join: %d records, %d rows",
            len(staged),
            sum(s.records for s in staged),
            sum(w.rows for w in written),
        )
        if self.on_batch is not None:
            self.on_batch(self.stats)

    def _drop_staged(self, staged: list[_StagedBatch], fetcher: Fetcher, why: str) -> None:
        log.warning("dropping %d batch(es) staged during the join (%s); re-seeking", len(staged), why)
        self.stats.conflicts += 1
        self._min_generation = max(s.generation for s in staged) + 1
        fetcher.request_reseek()

    def _commit(
        self, target: _Target, table: pa.Table | None, batch: Batch, snapshot: Snapshot | None
    ) -> CommitPlan | None:
        """Commit to one sink, retrying transient failures with a fresh snapshot."""
        registry = self._reader_registry
        if not target.required and (table is None or table.num_rows == 0):
            return None  # nothing for a secondary sink: do not even read its state
        backoff = Backoff(f"committing to {target.name}", self.stop_event, timeout_s=self.sink_retry_timeout_s)
        failed: CommitPlan | None = None  # the last attempt that reported a failure
        while True:
            if snapshot is None:
                snapshot = self._retry(target.writer.snapshot, f"reading sink {target.name}")
            plan = None
            try:
                # Planned against this attempt's snapshot: a commit that landed although it
                # reported a failure is seen here and not written again.
                plan = plan_commit(snapshot, table, batch, registry, required=target.required)
                if plan is None:
                    if failed is not None and _landed(failed, snapshot):
                        self.stats.committed()
                        return failed  # the failed attempt did land: count its rows as written
                    return None
                extra = {"cursors": plan.cursors} if plan.cursors else {}
                target.writer.commit(snapshot, plan.table, plan.positions, **extra)
            except PositionConflict:
                raise
            except TransientError as exc:
                self.stats.retries += 1
                failed = plan or failed
                backoff.wait(exc)
                snapshot = None
                continue
            self.stats.committed()
            return plan

    def _retry(self, action: Callable[[], Snapshot], what: str) -> Snapshot:
        return retry_transient(action, what, self.stop_event, self.sink_retry_timeout_s)

    # Until caught up ------------------------------------------------------------

    def _advance(self, batch: Batch, reader: SourceReader) -> None:
        self._advance_to(batch.last_positions, batch.ends, reader)

    def _advance_to(self, last_positions: dict[int, int], ends: dict[int, int], reader: SourceReader) -> None:
        for pid, last in last_positions.items():
            sp = reader.registry.partition(pid)
            self._reached[sp] = max(self._reached.get(sp, 0), last + 1)
        for pid, end in ends.items():
            sp = reader.registry.partition(pid)
            self._reached[sp] = max(self._reached.get(sp, 0), end)

    def _caught_up(self, fetcher: Fetcher, reader: SourceReader) -> bool:
        if self._exact_ends is not None:
            return False  # the ends known so far are estimates
        if not reader.ends_known_up_front:
            found = reader.found_ends()
            if found is None:
                return False
            self._targets = found
        for sp, position in list(fetcher.assigned_positions.items()):
            self._reached[sp] = max(self._reached.get(sp, 0), position)
        return all(self._reached.get(sp, -1) >= end for sp, end in self._targets.items())

    def _refresh_reached(self, primary: SinkWriter) -> None:
        behind = [sp for sp, end in self._targets.items() if self._reached.get(sp, -1) < end]
        if not behind:
            return
        try:
            stored = primary.read_positions(behind)
        except TransientError as exc:
            log.warning("could not read stored positions: %s", exc)
            return
        for sp, position in stored.items():
            self._reached[sp] = max(self._reached.get(sp, 0), position + 1)


def _landed(plan: CommitPlan, snapshot: Snapshot) -> bool:
    """Whether ``snapshot`` stores exactly the positions ``plan`` would have stored."""
    return _landed_positions(plan.positions, snapshot)


def _landed_positions(positions: dict[SourcePartition, int], snapshot: Snapshot) -> bool:
    return all(snapshot.position(sp) == position for sp, position in positions.items())


def run(
    topology: Topology,
    ctx: RunContext,
    *,
    stop: threading.Event | None = None,
    on_batch: Callable[[RunStats], None] | None = None,
) -> RunSummary:
    """Run ``topology`` with ``ctx``; see :class:`RunLoop`."""
    if not isinstance(topology, Topology):
        msg = f"expected a Topology, got {type(topology).__name__}"
        raise ConfigurationError(msg)
    return RunLoop(topology, ctx, stop=stop, on_batch=on_batch).run()
