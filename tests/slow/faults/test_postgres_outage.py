"""Postgres stopped or restarted under a running service, and the pool after a server-ended session."""
from __future__ import annotations

import http.client
import threading
import time

from app.infra.db import ConnectionPool
from tests.slow.faults.stack import Answer, Stack, call, pg, recommend, scalar, wait_until, workers


class Traffic:
    """A thread sending recommendation requests back to back, recording every answer with the
    time it was sent (a broken connection is recorded as status 0)."""

    def __init__(self, stack: Stack, user_id: str):
        self.stack, self.user_id = stack, user_id
        self.samples: list[tuple[float, Answer]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            sent = time.monotonic()
            try:
                answer = recommend(self.stack, self.user_id)
            except (OSError, http.client.HTTPException) as exc:
                answer = Answer(0, type(exc).__name__, None, time.monotonic() - sent)
            self.samples.append((sent, answer))
            time.sleep(0.02)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=30)

    def between(self, start: float, end: float) -> list[Answer]:
        """Answers to requests sent at or after `start` that finished before `end`."""
        return [a for sent, a in list(self.samples) if sent >= start and sent + a.seconds < end]

    def after(self, start: float) -> list[tuple[float, Answer]]:
        return [(sent, a) for sent, a in list(self.samples) if sent >= start]


def test_postgres_stopped_under_traffic_gives_fast_503s_and_recovers_without_restart(stack):
    learner = "fault-pg-learner"
    workers_before = workers(stack)
    with Traffic(stack, learner) as traffic:
        assert wait_until(lambda: sum(a.status == 200 for _, a in traffic.samples) >= 5, 20), traffic.samples
        stack.servers.stop_postgres()
        stopped = time.monotonic()
        try:
            time.sleep(2.0)
            ready = call(stack, "GET", "/readyz")
        finally:
            restarting = time.monotonic()
            stack.servers.start_postgres()
        started = time.monotonic()
        first_ok = wait_until(lambda: next((s for s, a in traffic.after(started) if a.status == 200), None), 15)
        assert first_ok is not None, f"no request succeeded within 15 s of Postgres returning\n{stack.log_tail()}"
        # Recovered means every request succeeds again, not one in between failures.
        assert wait_until(lambda: len(traffic.after(first_ok)) >= 20, 20)

    statuses = {a.status for _, a in traffic.samples}
    assert statuses <= {200, 503}, f"only 200 or 503 expected, got {statuses}\n{stack.log_tail()}"
    down = traffic.between(stopped, restarting)
    assert len(down) >= 10, down
    assert all(a.status == 503 for a in down), [a.status for a in down]
    assert all(a.content_type == "application/problem+json" and a.retry_after for a in down)
    assert all(a.body["status"] == 503 and a.body["detail"] for a in down)
    slowest = max(a.seconds for a in down)
    assert slowest < 1.0, f"a 503 took {slowest:.2f} s: it should fail fast, not wait"
    assert ready.status == 503 and ready.body["postgres"] == "down"
    recovered = traffic.after(first_ok)
    assert [a.status for _, a in recovered] == [200] * len(recovered)
    assert first_ok - started < 5.0
    assert workers(stack) == workers_before  # recovered by itself: no worker was restarted
    print(f"\npostgres down: {len(down)} answers, all 503, slowest {slowest * 1000:.0f} ms; first 200 "
          f"{(first_ok - started) * 1000:.0f} ms after Postgres was back")


def test_postgres_restart_between_requests_costs_no_request(stack):
    """Pooled connections opened before a restart are dead; none may be handed to a request."""
    learner = "fault-pg-restart"
    for _ in range(6):  # both workers hold an idle pooled connection now (most likely)
        assert recommend(stack, learner).status == 200
    stack.servers.stop_postgres()
    stack.servers.start_postgres()
    answers = [recommend(stack, learner) for _ in range(12)]
    assert [a.status for a in answers] == [200] * 12, [(a.status, a.body) for a in answers]


def test_pool_never_hands_out_a_connection_the_server_ended(stack):
    pool = ConnectionPool(stack.db_url, maxconn=2, connect_timeout=2, statement_timeout_ms=0)
    try:
        with pool.connection() as conn:
            victim = conn.get_backend_pid()
        with pg(stack.db_url) as admin:
            assert scalar(admin, "SELECT pg_terminate_backend(%s)", (victim,))
            assert wait_until(lambda: not scalar(admin, "SELECT count(*) FROM pg_stat_activity WHERE pid = %s",
                                                 (victim,)), 5)
        with pool.connection() as conn:
            assert conn.get_backend_pid() != victim
            with conn.cursor() as cur:
                cur.execute("SELECT 1")
                assert cur.fetchone() == (1,)
    finally:
        pool.closeall()
