"""The nightly snapshot of what learners know (issue 26), for analysts: for every learner with
attempts, their knowledge of their practised units as GET /v1/users/{user_id}/knowledge answers it
at one time (`as_of`), written to knowledge_snapshots (migration 010; the unit_mastery view).

Bounded: learners in batches (keyset pagination over users, one transaction and one multi-row
insert per batch), at most `max_learners` per tenant and run (the report says how many were left
out, never silently); histories read from Postgres, not through the serving cache (a walk over
every learner would evict the day's learners from Redis). A re-run with the same `as_of` replaces
its rows. The table grows by (learners x practised units) rows a night, so snapshots older than
`keep_days` (default KEEP_DAYS) are deleted at the end of each run.

In several processes when given workers (train --all gives its own): this process pages the
learners and hands each page (a part of at most PART learners) to a pool of spawned processes,
each with its own connection, model cache and plans, which write its rows in one transaction.
The rows are the same as in one process; a part's failure fails the run, the parts written stay.
"""
from __future__ import annotations

import multiprocessing
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from threadpoolctl import threadpool_limits

from app.catalogue import history as hist
from app.catalogue.candidates import CandidateCache
from app.infra import queries as q
from app.serving.context import Learner, RequestContext
from app.serving.knowledge import KnowledgePlan, inherited_settings, plan, unit_knowledge
from app.serving.model_cache import ModelCache

if TYPE_CHECKING:
    from psycopg2.extensions import connection as Connection

BATCH = 500
MAX_LEARNERS = 200_000
KEEP_DAYS = 90
# Learners per part when the snapshot runs in several processes: about a second's work, so the
# last part, which the pool finishes alone, is short (batch is still the most per transaction).
PART = 100
# The catalogue version is read once per this many seconds: a night's snapshot reads the catalogue
# as it was when it started, and each knowledge plan (the units a set of practised units comes to,
# half the snapshot's time when read per learner) is made once per set of units.
PLAN_VERSION_TTL_S = 3600.0
# numpy's BLAS threads per snapshotting process, in one process as in several: the processes share
# the cores (as the training pool's units do), and the same count everywhere makes the rows the
# same to the last bit whatever the workers (a different count moved a `due` by a microsecond).
BLAS_THREADS = 1


@dataclass
class SnapshotReport:
    tenant: str
    as_of: datetime
    learners: int = 0
    rows: int = 0
    left_out: bool = False      # stopped at max_learners with learners left
    deleted: int = 0            # rows of snapshots older than keep_days
    seconds: float = 0.0

    def summary(self) -> str:
        more = f"; stopped at the limit of {self.learners} learners, more are left" if self.left_out else ""
        return (f"knowledge snapshot of tenant {self.tenant} as of {self.as_of.isoformat()}: {self.rows} rows for "
                f"{self.learners} learners in {self.seconds:.1f} s{more}; {self.deleted} older rows deleted")


def run(conn: Connection, tenant: str, as_of: datetime, batch: int = BATCH, max_learners: int = MAX_LEARNERS,
        models: ModelCache | None = None, keep_days: int = KEEP_DAYS, workers: int = 1,
        database_url: str | None = None) -> SnapshotReport:
    """Snapshot every learner of `tenant` with attempts (up to `max_learners`, in id order) as of
    `as_of`, then delete the tenant's snapshots older than `keep_days` before it. With `workers`
    above 1 the learners' parts are snapshotted in that many processes, each on its own connection
    to `database_url`; this one pages the learners (the limit stays exact) and deletes at the end.
    A part's exception is raised here once the parts running have finished; the parts written stay."""
    if batch < 1 or max_learners < 1 or keep_days < 1 or workers < 1:
        raise ValueError("batch, max_learners, keep_days and workers must be at least 1")
    if workers > 1 and not database_url:
        raise ValueError("a snapshot in several processes needs the database URL")
    started = time.perf_counter()
    report = SnapshotReport(tenant, as_of)
    parts = _Pool(workers, database_url) if workers > 1 else _InProcess(conn, models)
    size = min(batch, PART) if workers > 1 else batch
    with parts, threadpool_limits(limits=BLAS_THREADS, user_api="blas"):
        after = ""
        while report.learners < max_learners:
            with conn:   # each page its own transaction: none held open while the parts run
                learners = [r["user_id"] for r in q.fetch_all(conn, "snapshot_learners", tenant=tenant, after=after,
                                                              limit=min(size, max_learners - report.learners))]
            if not learners:
                break
            report.rows += parts.submit(tenant, as_of, learners)
            report.learners += len(learners)
            after = learners[-1]
        else:
            with conn:
                report.left_out = bool(q.fetch_all(conn, "snapshot_learners", tenant=tenant, after=after, limit=1))
        report.rows += parts.finish()
    with conn:
        report.deleted = q.execute(conn, "delete_knowledge_snapshots_before", tenant=tenant,
                                   before=as_of - timedelta(days=keep_days))
    report.seconds = time.perf_counter() - started
    return report


def snapshot_part(conn: Connection, tenant: str, as_of: datetime, learners: list[str], known: Known) -> int:
    """Write the snapshot rows of `learners` (a batch, in one transaction); the rows written.

    Each learner's knowledge is unit_knowledge's of their practised units, as the endpoint answers
    it; read per batch here rather than per learner: their histories and practised units in one
    query each, and the plans of their sets of units made from the catalogue read once and kept
    (unit_knowledge counts the attempts from a history under hist.KEEP events, else reads them)."""
    histories = hist.from_postgres_many(conn, tenant, learners)
    practised = {user_id: sorted(set(units)) for user_id, units in
                 q.fetch_tuples(conn, "snapshot_practised_units", tenant=tenant, user_ids=learners)}
    version, catalogue = known.catalogue(conn, tenant)
    catalogue.read(conn, tenant, {u for units in practised.values() for u in units})
    columns: dict[str, list] = {k: [] for k in ("user_ids", "unit_ids", "ps", "lows", "highs", "mastered",
                                                "attempts", "correct", "last_practised", "due")}
    for user_id in learners:
        units = practised.get(user_id, [])
        ctx = RequestContext(conn, tenant, None, known.models, candidates=known.plans, now=as_of)
        if units:   # the plan where knowledge_plan looks for it (else it reads its own: the same, slower)
            known.plans.remember(("knowledge", tenant, version, tuple(units)),
                                 lambda units=units: catalogue.plan(units))
        found, _ = unit_knowledge(ctx, Learner(user_id, histories[user_id], "postgres"), units)
        for k in found:
            for name, value in (("user_ids", user_id), ("unit_ids", k.unit_id), ("ps", k.p), ("lows", k.low),
                                ("highs", k.high), ("mastered", k.mastered), ("attempts", k.attempts),
                                ("correct", k.correct), ("last_practised", k.last_practised), ("due", k.due)):
                columns[name].append(value)
    with conn:
        if columns["user_ids"]:
            q.execute(conn, "insert_knowledge_snapshot", tenant=tenant, as_of=as_of, **columns)
    return len(columns["user_ids"])


class _Catalogue:
    """The units the snapshot has met, as build_plan reads them (knowledge_units: each with its
    children and items) and the settings each inherits, read once per process rather than twice
    per set of units (the two queries were most of a plan's time, and a plan per learner half the
    snapshot's); `plan` is build_plan's KnowledgePlan from them."""

    def __init__(self):
        self.nodes: dict[str, dict] = {}
        self.inherited: dict = {}

    def read(self, conn: Connection, tenant: str, units: set[str]) -> None:
        """Read the units not yet met and every unit below them."""
        new = sorted(units - self.nodes.keys())
        if new:
            self.nodes.update({r["unit_id"]: r for r in q.fetch_all(conn, "knowledge_units", tenant=tenant,
                                                                     unit_ids=new)})
            self.inherited.update(inherited_settings(conn, tenant, new))

    def plan(self, units: list[str]) -> KnowledgePlan:
        planned = plan(self.nodes, units, self.inherited)
        holding: dict[str, list[int]] = {}
        for k, u in enumerate(planned):
            for item in u.items:
                holding.setdefault(item, []).append(k)
        return KnowledgePlan(planned, {item: tuple(ks) for item, ks in holding.items()})


class Known:
    """What a snapshotting process keeps across its parts: the models, the knowledge plans (the
    catalogue version read once per PLAN_VERSION_TTL_S) and the catalogue they are made from."""

    def __init__(self, models: ModelCache | None = None):
        self.models = models or ModelCache()
        self.plans = CandidateCache(PLAN_VERSION_TTL_S)
        self._catalogues: dict[tuple, _Catalogue] = {}

    def catalogue(self, conn: Connection, tenant: str) -> tuple[int, _Catalogue]:
        """The tenant's catalogue version and what has been read of it (kept for the newest only)."""
        version = self.plans.version(conn, tenant)
        if (tenant, version) not in self._catalogues:
            self._catalogues = {(tenant, version): _Catalogue()}
        return version, self._catalogues[(tenant, version)]


class _InProcess:
    """The parts one after another on the caller's connection."""

    def __init__(self, conn: Connection, models: ModelCache | None):
        self.conn, self.known = conn, Known(models)

    def submit(self, tenant: str, as_of: datetime, learners: list[str]) -> int:
        return snapshot_part(self.conn, tenant, as_of, learners, self.known)

    def finish(self) -> int:
        return 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None


_worker: dict = {}   # a pool process's connection and what it keeps (_start_worker)


def _start_worker(database_url: str) -> None:
    from app.infra.db import connect

    threadpool_limits(limits=BLAS_THREADS, user_api="blas")   # for the process's life
    _worker.update(conn=connect(database_url, application_name="adaptrec-knowledge-snapshot"), known=Known())


def _run_part(tenant: str, as_of: datetime, learners: list[str]) -> int:
    try:
        return snapshot_part(_worker["conn"], tenant, as_of, learners, _worker["known"])
    except BaseException:
        _worker["conn"].rollback()
        raise


class _Pool:
    """The parts on `workers` spawned processes (no Postgres session inherited), at most two per
    process queued; the first part's exception (a dead process: BrokenProcessPool) raised by
    submit or finish, the parts not started cancelled."""

    def __init__(self, workers: int, database_url: str):
        self.workers = workers
        self.executor = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                            initializer=_start_worker, initargs=(database_url,))
        self.pending: set[Future] = set()

    def submit(self, tenant: str, as_of: datetime, learners: list[str]) -> int:
        rows = 0
        if len(self.pending) >= 2 * self.workers:
            done, self.pending = wait(self.pending, return_when=FIRST_COMPLETED)
            rows = sum(f.result() for f in done)
        self.pending.add(self.executor.submit(_run_part, tenant, as_of, learners))
        return rows

    def finish(self) -> int:
        pending, self.pending = self.pending, set()
        return sum(f.result() for f in wait(pending).done)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.executor.shutdown(wait=True, cancel_futures=True)
