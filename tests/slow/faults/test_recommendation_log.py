"""The recommendation log is written off the request path: what a crash and a graceful stop cost.

Bound (docs/OPERATIONS.md): a worker killed outright loses at most the answers of its last
second; a graceful stop (SIGTERM) loses none.
"""
from __future__ import annotations

import os
import signal
import time
import uuid

from harness.service import running_service
from tests.slow.faults.stack import API_KEY, PREFIX, ROOT, Stack, call, pg, rows, wait_until, workers

LOSS_BOUND_S = 1.0


def _ask(target, run: str, k: int) -> tuple[str, float] | None:
    """One recommendation with a known request id; (request id, when answered) or None."""
    request_id = f"log-{run}-{k}"
    answer = call(target, "POST", "/v1/recommendations",
                  {"user_id": f"log-learner-{k % 7}", "units": [ROOT], "n": 3}, headers={"X-Request-Id": request_id})
    return (request_id, time.monotonic()) if answer.status == 200 else None


def _logged(db_url: str, run: str) -> set[str]:
    with pg(db_url) as conn:
        return {r[0] for r in rows(conn, "SELECT request_id FROM recommendation_log WHERE request_id LIKE %s",
                                   (f"log-{run}-%",))}


def test_a_killed_worker_loses_at_most_its_last_second_of_answers(stack: Stack):
    run = uuid.uuid4().hex[:8]
    victim = workers(stack)[0]
    answered: list[tuple[str, float]] = []
    killed_at = None
    started = time.monotonic()
    k = 0
    while time.monotonic() - started < 4.0:
        if killed_at is None and time.monotonic() - started > 2.5:
            os.kill(victim, signal.SIGKILL)
            killed_at = time.monotonic()
        try:
            got = _ask(stack, run, k)
        except OSError:
            got = None  # the request the dying worker held
        if got:
            answered.append(got)
        k += 1
        time.sleep(0.01)
    assert wait_until(lambda: victim not in workers(stack) and len(workers(stack)) == 2, 30)
    time.sleep(2 * LOSS_BOUND_S)  # the live worker's buffer is written by now
    logged = _logged(stack.db_url, run)
    lost = [(rid, at) for rid, at in answered if rid not in logged]
    assert len(answered) > 100
    # Only answers of the killed worker's last second before the kill are gone, never older ones.
    assert all(killed_at - LOSS_BOUND_S <= at <= killed_at for _, at in lost), \
        [(rid, round(killed_at - at, 3)) for rid, at in lost]
    assert len(lost) < len(answered) / 2
    print(f"\nworker {victim} killed: {len(answered)} answers, {len(lost)} rows lost, all answered in the "
          f"last {max((killed_at - at for _, at in lost), default=0):.2f} s before the kill")


def test_a_graceful_stop_writes_every_buffered_answer(stack: Stack, tmp_path):
    run = uuid.uuid4().hex[:8]
    with running_service(stack.db_url, stack.redis_url, API_KEY, tmp_path / "gunicorn.log", redis_prefix=PREFIX,
                         workers=2) as service:
        answered = [got for k in range(60) if (got := _ask(service, run, k))]
        stopped = time.monotonic()
        assert stopped - answered[-1][1] < 0.1  # the last answers are still in the buffers
        assert service.stop() == 0
    assert len(answered) == 60
    assert _logged(stack.db_url, run) == {rid for rid, _ in answered}
