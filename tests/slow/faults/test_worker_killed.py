"""A gunicorn worker killed with SIGKILL during batch ingest: nothing lost, nothing stored twice."""
from __future__ import annotations

import http.client
import os
import signal
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field

import psycopg2

from cli.serve import wait_ready
from tests.slow.faults.stack import Stack, call, pg, rows, some_items, wait_until, workers

CLIENT_TIMEOUT_S = 2.0


@dataclass
class Batch:
    events: list[dict]
    gate: threading.Event | None = None      # when set up, sent only once the test opens the gate
    arrived: threading.Event = field(default_factory=threading.Event)
    attempts: list[str] = field(default_factory=list)   # per attempt: HTTP status, or the exception's name
    answers: list[dict] = field(default_factory=list)   # the body of each 2xx answer
    error: str | None = None

    def statuses(self) -> dict[str, str]:
        """event_id -> created | duplicate, from the 2xx answer."""
        return {r["event_id"]: r["status"] for r in self.answers[-1]["events"]}


def _send_until_acked(stack: Stack, batch: Batch, deadline: float) -> None:
    """A careful client: resend the same events (same event_ids) until a 2xx answer; a broken
    connection, a timeout or a 5xx is retried, a 4xx is a bug."""
    while time.monotonic() < deadline:
        try:
            answer = call(stack, "POST", "/v1/interactions", {"interactions": batch.events}, timeout=CLIENT_TIMEOUT_S)
        except (OSError, http.client.HTTPException) as exc:
            batch.attempts.append(type(exc).__name__)
            time.sleep(0.05)
            continue
        batch.attempts.append(str(answer.status))
        if 200 <= answer.status < 300:
            batch.answers.append(answer.body)
            return
        if answer.status < 500:
            batch.error = f"{answer.status}: {answer.body}"
            return
        time.sleep(0.05)
    batch.error = f"not acknowledged in time: {batch.attempts}"


def _client(stack: Stack, batches: list[Batch], deadline: float) -> None:
    for batch in batches:
        if batch.gate is not None:
            batch.arrived.set()
            batch.gate.wait(60)
        try:
            _send_until_acked(stack, batch, deadline)
        except Exception as exc:  # reported by the test's assertions, not lost in the thread
            batch.error = repr(exc)


@contextmanager
def stalled(stack: Stack, event: dict):
    """Hold `event`'s event_id in an open transaction: an ingest of it stops at that row, inside
    its transaction, until this one rolls back."""
    conn = psycopg2.connect(stack.db_url)
    try:
        with conn.cursor() as cur:
            cur.execute("INSERT INTO interactions (event_id, user_id, item_id, kind, outcome, occurred_at) "
                        "VALUES (%s, %s, %s, %s, %s, now())",
                        (event["event_id"], event["user_id"], event["item_id"], event["kind"], event["outcome"]))
        yield conn.get_backend_pid()
    finally:
        conn.rollback()
        conn.close()


def blocked_by(conn, pid: int) -> list[tuple[int, str]]:
    """(pid, application_name) of the sessions waiting for a lock that session `pid` holds."""
    return rows(conn, "SELECT pid, application_name FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))",
                (pid,))


def test_worker_killed_during_batch_ingest_loses_and_duplicates_nothing(stack):
    run = uuid.uuid4().hex[:8]
    items = some_items(stack, 60)
    learners = [f"fault-ingest-{run}-{u}" for u in range(12)]  # shared by the threads, as in real traffic
    threads_n, batches_n, size = 4, 12, 100
    plan = [[Batch([{"event_id": f"fault-{run}-{t}-{b}-{e}", "user_id": learners[(b + e) % len(learners)],
                     "item_id": items[(t * 7 + b * 3 + e) % len(items)], "kind": "attempt", "outcome": e % 2}
                    for e in range(size)])
             for b in range(batches_n)] for t in range(threads_n)]
    # Two batches mid-stream wait for the test: one whose worker is killed in its transaction,
    # one whose client gives up waiting although the server goes on to store it.
    killed, timed_out = plan[0][batches_n // 2], plan[1][batches_n // 2]
    killed.gate, timed_out.gate = threading.Event(), threading.Event()
    deadline = time.monotonic() + 90
    threads = [threading.Thread(target=_client, args=(stack, plan[t], deadline)) for t in range(threads_n)]
    before = workers(stack)
    assert len(before) == 2, before
    for th in threads:
        th.start()
    try:
        assert killed.arrived.wait(30) and timed_out.arrived.wait(30)
        with pg(stack.db_url) as watch:
            # The killed worker: SIGKILL while its transaction waits in the middle of the batch
            # (99 rows inserted, the 100th held by us). Its client sees the connection break and
            # resends; the resent batch waits behind the dead worker's transaction, which
            # Postgres ends only when that transaction next talks to its (gone) client.
            with stalled(stack, killed.events[-1]) as holder:
                killed.gate.set()
                waiting = wait_until(lambda: blocked_by(watch, holder), 15)
                assert len(waiting) == 1, waiting
                dead_session, name = waiting[0]
                victim = int(name.rsplit(":", 1)[1])  # the pool names sessions adaptrec-api:<pid>
                assert victim in before, (name, before)
                os.kill(victim, signal.SIGKILL)
                assert wait_until(lambda: killed.attempts and blocked_by(watch, dead_session), 30), killed.attempts
            # The lost answer: the client times out and resends while the first request, still
            # alive, waits in its transaction; released, the first commits and the resent batch
            # finds every event stored.
            with stalled(stack, timed_out.events[-1]) as holder:
                timed_out.gate.set()
                waiting = wait_until(lambda: blocked_by(watch, holder), 15)
                assert len(waiting) == 1, waiting
                first_session = waiting[0][0]
                assert wait_until(lambda: timed_out.attempts and blocked_by(watch, first_session), 30)
    finally:
        for batch in (killed, timed_out):
            batch.gate.set()
        for th in threads:
            th.join(timeout=120)
    batches = [b for per_thread in plan for b in per_thread]
    assert not [b.error for b in batches if b.error], stack.log_tail()

    sent = {e["event_id"] for b in batches for e in b.events}
    with pg(stack.db_url) as conn:
        stored = [r[0] for r in rows(conn, "SELECT event_id FROM interactions WHERE event_id LIKE %s",
                                     (f"fault-{run}-%",))]
    assert len(stored) == len(set(stored)) == len(sent)  # nothing lost, nothing stored twice
    assert set(stored) == sent

    created_by: dict[str, int] = {}
    for b in batches:
        statuses = b.statuses()
        assert list(statuses) == [e["event_id"] for e in b.events]
        for event_id, outcome in statuses.items():
            created_by[event_id] = created_by.get(event_id, 0) + (outcome == "created")
        if len(b.attempts) == 1:
            assert set(statuses.values()) == {"created"}  # first try of fresh ids: all new
    assert max(created_by.values()) == 1  # no event acknowledged as new twice
    # The killed worker's transaction left nothing: the resent batch stored all of it.
    assert not killed.attempts[0].isdigit() and set(killed.statuses().values()) == {"created"}
    # The timed-out request was stored by its first attempt: the resent one is all duplicates.
    assert timed_out.attempts[0] == "TimeoutError" and set(timed_out.statuses().values()) == {"duplicate"}

    # The master replaced the worker; the service answers.
    assert victim not in workers(stack)
    assert wait_until(lambda: len(workers(stack)) == 2, 30)
    assert wait_ready(f"http://127.0.0.1:{stack.port}/readyz", stack.proc, timeout_s=30)
    retried = [b for b in batches if len(b.attempts) > 1]
    duplicates = sum(s == "duplicate" for b in batches for s in b.statuses().values())
    print(f"\nworker {victim} killed: {len(sent)} events in {len(batches)} batches all acknowledged; "
          f"{len(retried)} batches retried ({sum(len(b.attempts) - 1 for b in retried)} retries: "
          f"{[b.attempts for b in retried]}); {duplicates} events answered as duplicates; "
          f"{sum(1 for n in created_by.values() if n == 0)} stored by an attempt whose answer was lost; "
          f"0 lost, 0 stored twice")
