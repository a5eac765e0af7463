"""The nightly snapshot of what learners know (issue 26), for analysts: for every learner with
attempts, their knowledge of their practised units as GET /v1/users/{user_id}/knowledge answers it
at one time (`as_of`), written to knowledge_snapshots (migration 010; the unit_mastery view).

Bounded: learners in batches (keyset pagination over users, one transaction and one multi-row
insert per batch), at most `max_learners` per tenant and run (the report says how many were left
out, never silently); histories read from Postgres, not through the serving cache (a walk over
every learner would evict the day's learners from Redis). A re-run with the same `as_of` replaces
its rows. The table grows by (learners x practised units) rows a night, so snapshots older than
`keep_days` (default KEEP_DAYS) are deleted at the end of each run.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from app.catalogue import history as hist
from app.infra import queries as q
from app.serving.context import Learner, RequestContext
from app.serving.knowledge import unit_knowledge
from app.serving.model_cache import ModelCache

if TYPE_CHECKING:
    from psycopg2.extensions import connection as Connection

BATCH = 500
MAX_LEARNERS = 200_000
KEEP_DAYS = 90


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
        models: ModelCache | None = None, keep_days: int = KEEP_DAYS) -> SnapshotReport:
    """Snapshot every learner of `tenant` with attempts (up to `max_learners`, in id order) as of
    `as_of`, then delete the tenant's snapshots older than `keep_days` before it."""
    if batch < 1 or max_learners < 1 or keep_days < 1:
        raise ValueError("batch, max_learners and keep_days must be at least 1")
    started = time.perf_counter()
    models = models or ModelCache()
    report = SnapshotReport(tenant, as_of)
    after = ""
    while report.learners < max_learners:
        limit = min(batch, max_learners - report.learners)
        learners = [r["user_id"] for r in q.fetch_all(conn, "snapshot_learners", tenant=tenant, after=after,
                                                      limit=limit)]
        if not learners:
            break
        columns: dict[str, list] = {k: [] for k in ("user_ids", "unit_ids", "ps", "lows", "highs", "mastered",
                                                    "attempts", "correct", "last_practised", "due")}
        for user_id in learners:
            ctx = RequestContext(conn, tenant, None, models, now=as_of)
            found, _ = unit_knowledge(ctx, Learner(user_id, hist.from_postgres(conn, tenant, user_id), "postgres"),
                                      None)
            for k in found:
                for name, value in (("user_ids", user_id), ("unit_ids", k.unit_id), ("ps", k.p), ("lows", k.low),
                                    ("highs", k.high), ("mastered", k.mastered), ("attempts", k.attempts),
                                    ("correct", k.correct), ("last_practised", k.last_practised), ("due", k.due)):
                    columns[name].append(value)
        with conn:
            if columns["user_ids"]:
                q.execute(conn, "insert_knowledge_snapshot", tenant=tenant, as_of=as_of, **columns)
        report.learners += len(learners)
        report.rows += len(columns["user_ids"])
        after = learners[-1]
    else:
        report.left_out = bool(q.fetch_all(conn, "snapshot_learners", tenant=tenant, after=after, limit=1))
    with conn:
        report.deleted = q.execute(conn, "delete_knowledge_snapshots_before", tenant=tenant,
                                   before=as_of - timedelta(days=keep_days))
    report.seconds = time.perf_counter() - started
    return report
