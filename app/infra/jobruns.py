"""A record of every job run in `job_runs` (migration 005): when, how long, how it ended.

The run keeps its own Postgres session open while it works: a run killed outright (SIGKILL, the
machine gone) leaves no outcome, and the job_status view calls it 'abandoned' once that session
is gone. /metrics turns the table into job durations, outcomes and the time of the last success.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field

from psycopg2.extras import Json

from app.infra import queries as q
from app.infra.db import connect
from app.infra.logs import redact


@dataclass
class JobRun:
    run_id: int
    outcome: str = "succeeded"     # the job sets failed or skipped; an exception sets failed
    detail: dict = field(default_factory=dict)


@contextmanager
def recorded(database_url: str, job: str, tenant: str, **detail):
    """`with recorded(url, "train", tenant, units=...) as run:` ... set run.outcome / run.detail."""
    conn = connect(database_url, application_name=f"adaptrec-{job}")
    conn.autocommit = True
    try:
        run_id = q.fetch_one(conn, "start_job_run", tenant=tenant, job=job, detail=Json(detail))["run_id"]
        run = JobRun(run_id)
        try:
            yield run
        except BaseException as exc:
            run.outcome = "failed"
            run.detail["error"] = redact(f"{type(exc).__name__}: {exc}".splitlines()[0])[:500]
            raise
        finally:
            q.execute(conn, "finish_job_run", run_id=run_id, outcome=run.outcome, detail=Json(run.detail))
    finally:
        conn.close()
