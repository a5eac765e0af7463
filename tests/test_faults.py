"""Faults injected into real processes: Postgres and Redis stopped under a running gunicorn, a
worker killed with SIGKILL during batch ingest, the training job killed mid-run, and training
jobs and migrations started twice at once.

Everything here runs on a private pair of embedded servers (not the suite's shared ones, which
may be the system Postgres and Redis in CI and must never be stopped), with one small demo
data set, one trained model and one gunicorn (2 workers) for the whole module.
"""
from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import psycopg2
import pytest
import redis

from app.config import PROJECT_ROOT
from app.db import ConnectionPool, scratch_database
from app.embedded import EmbeddedServers
from app.migrations import MIGRATION_LOCK_KEY, discover, migrate, status
from cli.serve import gunicorn_command, wait_ready
from jobs.demo import DemoConfig, generate_demo
from jobs.train import TRAIN_LOCK_KEY, TrainConfig, run_training

API_KEY = "fault-key-0123456789"
PREFIX = "adaptrec-faults:"
ROOT = "demo"
ACTIVE_MODELS = """SELECT unit_id, objective, tag, array_agg(model_id ORDER BY model_id)
                   FROM models WHERE status = 'active' GROUP BY unit_id, objective, tag"""


# ---- servers, data, service ---------------------------------------------------------------------
@dataclass
class Stack:
    servers: EmbeddedServers
    db_url: str
    redis_url: str
    port: int = 0
    proc: subprocess.Popen | None = None
    log_path: Path | None = None

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path else ""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def stack():
    """Private embedded servers with a small demo (attempts only: no engagement model, whose
    grid search takes seconds) and one practice model of the root unit, served by gunicorn."""
    # Not under pytest's tmp_path: when we run as root, Postgres runs as another user who must
    # traverse the folders above its data, and a concurrent pytest session resets the mode of
    # /tmp/pytest-of-<user> to 0700.
    home = Path(tempfile.mkdtemp(prefix="adaptrec-faults-"))
    servers = EmbeddedServers(home / "var")
    db_url, redis_url = servers.acquire()
    try:
        conn = psycopg2.connect(db_url)
        try:
            migrate(conn)
            generate_demo(conn, DemoConfig(seed=7, learners=300, attempts=20_000, engagements=0))
        finally:
            conn.close()
        report = run_training(db_url, TrainConfig(max_trials=1, max_eval_users=60), units=[ROOT], progress=False)
        assert [o.status for o in report.outcomes] == ["activated"], report.table()
        stack = Stack(servers, db_url, redis_url)
        with _service(stack, home):
            yield stack
    finally:
        servers.release()
        shutil.rmtree(home, ignore_errors=True)


@contextmanager
def _service(stack: Stack, home: Path):
    stack.port = free_port()
    stack.log_path = home / "gunicorn.log"
    env = {**os.environ, **_server_env(stack), "ADAPTREC_API_KEYS": API_KEY, "ADAPTREC_REDIS_PREFIX": PREFIX,
           "ADAPTREC_HOME": str(home), "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    with open(stack.log_path, "w") as log:
        stack.proc = subprocess.Popen(gunicorn_command(f"127.0.0.1:{stack.port}", 2), env=env, cwd=PROJECT_ROOT,
                                      stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        assert wait_ready(f"http://127.0.0.1:{stack.port}/readyz", stack.proc), stack.log_tail()
        yield
    finally:
        os.killpg(stack.proc.pid, signal.SIGTERM)
        try:
            stack.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(stack.proc.pid, signal.SIGKILL)
            stack.proc.wait()


def _server_env(stack: Stack) -> dict:
    return {"ADAPTREC_DATABASE_URL": stack.db_url, "ADAPTREC_REDIS_URL": stack.redis_url}


def workers(stack: Stack) -> list[int]:
    """The gunicorn master's children: its workers."""
    try:
        return sorted(child.pid for child in psutil.Process(stack.proc.pid).children())
    except psutil.Error:
        return []


@contextmanager
def pg(url: str):
    conn = psycopg2.connect(url)
    conn.autocommit = True
    try:
        yield conn
    finally:
        conn.close()


def scalar(conn, sql: str, params=None):
    with conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchone()[0]


def rows(conn, sql: str, params=None) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


# ---- HTTP ---------------------------------------------------------------------------------------
@dataclass
class Answer:
    status: int
    content_type: str
    body: dict | None
    seconds: float
    retry_after: str | None = None


def call(stack: Stack, method: str, path: str, body=None, timeout: float = 10) -> Answer:
    """One request on a fresh connection (closed afterwards); raises OSError / HTTPException
    when the connection breaks (as it does when the worker dies)."""
    conn = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=timeout)
    headers = {"Authorization": f"Bearer {API_KEY}"}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    started = time.monotonic()
    try:
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        raw = resp.read()
        ctype = resp.getheader("Content-Type", "")
        parsed = json.loads(raw) if raw and "json" in ctype else None
        return Answer(resp.status, ctype, parsed, time.monotonic() - started, resp.getheader("Retry-After"))
    finally:
        conn.close()


def recommend(stack: Stack, user_id: str) -> Answer:
    return call(stack, "POST", "/v1/recommendations", {"user_id": user_id, "units": [ROOT], "n": 5})


def some_items(stack: Stack, n: int) -> list[str]:
    with pg(stack.db_url) as conn:
        return [r[0] for r in rows(conn, "SELECT item_id FROM items WHERE kind = 'question' ORDER BY item_id "
                                         "LIMIT %s", (n,))]


def active_model(stack: Stack) -> int:
    with pg(stack.db_url) as conn:
        return scalar(conn, "SELECT model_id FROM models WHERE unit_id = %s AND objective = 'practice' "
                            "AND tag = 'default' AND status = 'active'", (ROOT,))


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


def wait_until(predicate, timeout: float, step: float = 0.05):
    """Poll `predicate` until it returns something truthy, and return that (falsy on timeout)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    return predicate()


# ---- 1. Postgres stopped ------------------------------------------------------------------------
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


# ---- 2. Redis stopped ---------------------------------------------------------------------------
def test_redis_stopped_requests_keep_succeeding_and_the_cache_refills(stack):
    cache = redis.Redis.from_url(stack.redis_url)
    try:
        _redis_outage(stack, cache)
    finally:
        cache.close()


def _redis_outage(stack: Stack, cache: redis.Redis) -> None:
    learner, newcomer = "fault-redis-learner", f"fault-redis-new-{uuid.uuid4().hex[:6]}"
    item = some_items(stack, 1)[0]
    assert recommend(stack, learner).status == 200
    assert cache.exists(PREFIX + "hist:" + learner) or cache.exists(PREFIX + "hist:" + learner + ":empty")

    stack.servers.stop_redis()
    try:
        down = [recommend(stack, learner) for _ in range(10)]
        ingest = call(stack, "POST", "/v1/interactions", {"event_id": f"redis-down-{newcomer}", "user_id": newcomer,
                                                          "item_id": item, "kind": "attempt", "outcome": 1})
        down.append(ingest)
        down.append(recommend(stack, newcomer))
        ready = call(stack, "GET", "/readyz")
    finally:
        stack.servers.start_redis()
    assert [a.status for a in down] == [200] * 10 + [201, 200], [(a.status, a.body) for a in down]
    assert down[-1].body["history_rows"] == 1  # served from Postgres, with the event just stored
    assert ready.status == 200 and ready.body["status"] == "degraded" and ready.body["redis"] == "down"
    slowest = max(a.seconds for a in down)
    assert slowest < 1.0, f"a request took {slowest:.2f} s while Redis was down"

    assert not list(cache.scan_iter(match=PREFIX + "hist:*"))  # a new Redis starts empty
    key = PREFIX + "hist:" + newcomer

    def refilled() -> bool:
        answer = recommend(stack, newcomer)
        assert answer.status == 200 and answer.body["history_rows"] == 1
        return bool(cache.exists(key))

    started = time.monotonic()
    assert wait_until(refilled, 5, step=0.1), "the history cache was not refilled after Redis returned"
    refill_s = time.monotonic() - started
    assert json.loads(cache.lindex(key, 0))[0] == item  # refilled from Postgres: the event is there
    assert call(stack, "GET", "/readyz").body["status"] == "ready"
    print(f"\nredis down: {len(down)} requests all 2xx, slowest {slowest * 1000:.0f} ms; "
          f"history cached again {refill_s * 1000:.0f} ms after Redis was back")


# ---- 3. a worker killed during batch ingest -----------------------------------------------------
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


# ---- 4. the training job killed mid-run ---------------------------------------------------------
def adaptrec(stack: Stack, *args: str, log: Path, extra_env: dict | None = None) -> subprocess.Popen:
    env = {**os.environ, **_server_env(stack), **(extra_env or {})}
    with open(log, "w") as out:
        return subprocess.Popen([sys.executable, "-m", "cli", *args], cwd=PROJECT_ROOT, env=env,
                                stdout=out, stderr=subprocess.STDOUT)


def finish(proc: subprocess.Popen, timeout: float = 120) -> int:
    return proc.wait(timeout=timeout)


@contextmanager
def reaped(*procs: subprocess.Popen):
    """Kill and reap whatever is still running on the way out (after a failed assertion too)."""
    try:
        yield procs
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()


def advisory_lock(conn, key: int) -> list[tuple[int, bool]]:
    """(pid, granted) of the sessions holding or awaiting advisory lock `key` in this database."""
    return rows(conn, """
        SELECT l.pid, l.granted FROM pg_locks l JOIN pg_database d ON d.oid = l.database
        WHERE l.locktype = 'advisory' AND d.datname = current_database() AND l.objsubid = 1
          AND ((l.classid::bigint << 32) | l.objid::bigint) = %s""", (key,))


def training_underway(conn) -> bool:
    """The job holds its lock and its training session has read the unit's data (it rolls back
    after each read, so its last statement is ROLLBACK); what follows is the fitting."""
    reading = scalar(conn, """
        SELECT count(*) FROM pg_stat_activity
        WHERE datname = current_database() AND application_name = 'adaptrec-train'
          AND state = 'idle' AND query = 'ROLLBACK'""")
    return bool(advisory_lock(conn, TRAIN_LOCK_KEY)) and reading > 0


def assert_one_whole_active_model_per_unit(conn) -> None:
    for unit_id, objective, tag, ids in rows(conn, ACTIVE_MODELS):
        assert len(ids) == 1, f"{unit_id} {objective} {tag}: active models {ids}"
    half = scalar(conn, "SELECT count(*) FROM models m WHERE status = 'active' "
                        "AND NOT EXISTS (SELECT 1 FROM model_arrays a WHERE a.model_id = m.model_id)")
    assert half == 0, "an active model has no arrays"


def test_training_killed_mid_run_leaves_the_active_model_serving(stack, tmp_path):
    old = active_model(stack)
    assert recommend(stack, "fault-train-learner").body["model"]["model_id"] == old
    # Many tuning trials make a run that lasts (up to the unit's time budget) until killed.
    launched = time.monotonic()
    proc = adaptrec(stack, "train", "--unit", ROOT, "--trials", "200", log=tmp_path / "train-killed.log")
    with reaped(proc), pg(stack.db_url) as conn:
        underway = wait_until(lambda: training_underway(conn), 60, step=0.05)
        assert underway, (tmp_path / "train-killed.log").read_text()
        fitting = time.monotonic()
        time.sleep(0.5)  # inside the trials (they take several seconds)
        assert proc.poll() is None, "the job ended before it could be killed; give it more trials"
        proc.send_signal(signal.SIGKILL)
        killed_after = time.monotonic() - fitting
        assert finish(proc) == -signal.SIGKILL
        # Postgres notices the dead session at once: the lock does not outlive the job.
        assert wait_until(lambda: not advisory_lock(conn, TRAIN_LOCK_KEY), 10)
        assert_one_whole_active_model_per_unit(conn)
        newer = rows(conn, "SELECT model_id, status FROM models WHERE model_id > %s", (old,))
    # Killed before it stored anything, or (rarely) between storing and activating: never active.
    assert all(state != "active" for _, state in newer), newer
    assert active_model(stack) == old
    answer = recommend(stack, "fault-train-learner")
    assert answer.status == 200 and answer.body["model"]["model_id"] == old

    # The next run trains normally. The margin only keeps this about the kill, not model quality.
    nxt = adaptrec(stack, "train", "--unit", ROOT, "--trials", "1", "--quiet", log=tmp_path / "train-next.log",
                   extra_env={"ADAPTREC_TRAIN_MARGIN": "1", "ADAPTREC_TRAIN_MAX_EVAL_USERS": "60"})
    output = tmp_path / "train-next.log"
    with reaped(nxt):
        assert finish(nxt) == 0, output.read_text()
    assert "activated" in output.read_text()
    new = active_model(stack)
    assert new > old
    with pg(stack.db_url) as conn:
        assert_one_whole_active_model_per_unit(conn)
    # Workers re-check the active model every few seconds and switch without a restart.
    assert wait_until(lambda: recommend(stack, "fault-train-learner").body["model"]["model_id"] == new, 15, 0.5)
    print(f"\ntraining killed {killed_after:.1f} s into fitting ({fitting - launched:.1f} s after "
          f"launch): model {old} kept serving, rows stored by the killed run: {newer}; next run activated {new}")


# ---- 5. jobs started twice at once --------------------------------------------------------------
def test_two_training_jobs_at_once_one_trains_the_other_steps_aside(stack, tmp_path):
    logs = [tmp_path / "train-a.log", tmp_path / "train-b.log"]
    with pg(stack.db_url) as blocker:
        # Hold both jobs at their first read of the catalogue, so that they certainly run at the
        # same time: without this a fast job could finish before the other starts, and the test
        # would pass or fail by timing. The advisory lock is taken before that read.
        blocker.autocommit = False
        with blocker.cursor() as cur:
            cur.execute("LOCK TABLE units IN ACCESS EXCLUSIVE MODE")
        procs = [adaptrec(stack, "train", "--unit", ROOT, "--trials", "1", "--quiet", log=log,
                          extra_env={"ADAPTREC_TRAIN_MARGIN": "1", "ADAPTREC_TRAIN_MAX_EVAL_USERS": "60"})
                 for log in logs]
        with reaped(*procs):
            try:
                ended = wait_until(lambda: [i for i, p in enumerate(procs) if p.poll() is not None], 60)
                assert len(ended) == 1, [log.read_text() for log in logs]
                first, other = ended[0], 1 - ended[0]
                assert procs[first].returncode == 0, logs[first].read_text()
                assert "another training job is running" in logs[first].read_text()
                assert procs[other].poll() is None  # the one holding the lock, waiting on the catalogue
            finally:
                blocker.rollback()
            finish(procs[other])
    assert procs[other].returncode == 0, logs[other].read_text()
    assert "activated" in logs[other].read_text()
    assert "another training job is running" not in logs[other].read_text()
    with pg(stack.db_url) as conn:
        assert_one_whole_active_model_per_unit(conn)
        assert [r[:3] for r in rows(conn, ACTIVE_MODELS)] == [(ROOT, "practice", "default")]


def test_two_migrations_at_once_on_an_empty_database_apply_each_file_once(stack, tmp_path):
    with scratch_database(stack.db_url, "faults_migrate", migrated=False) as url:
        _migrate_twice(stack, url, tmp_path)


def _migrate_twice(stack: Stack, url: str, tmp_path: Path) -> None:
    logs = [tmp_path / "migrate-a.log", tmp_path / "migrate-b.log"]
    env = {"ADAPTREC_DATABASE_URL": url, "ADAPTREC_REDIS_URL": stack.redis_url}
    with pg(url) as holder:
        # Hold the migration lock until both processes wait for it, so both are certainly running
        # at once; then let them race for it.
        scalar(holder, "SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
        procs = [adaptrec(stack, "db", "migrate", log=log, extra_env=env) for log in logs]
        with reaped(*procs):
            try:
                def both_waiting() -> bool:
                    return sum(not granted for _, granted in advisory_lock(holder, MIGRATION_LOCK_KEY)) == 2

                assert wait_until(both_waiting, 60), [log.read_text() for log in logs]
            finally:
                scalar(holder, "SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_KEY,))
            codes = [finish(p) for p in procs]
        assert codes == [0, 0], [log.read_text() for log in logs]
        known = discover()
        applied = sorted(int(log.read_text().split("applied ")[-1].split()[0]) for log in logs)
        assert applied == [0, len(known)]  # one applied everything, the other found nothing to do
        recorded = rows(holder, "SELECT version, count(*) FROM schema_migrations GROUP BY version ORDER BY version")
        assert recorded == [(m.version, 1) for m in known]
        state = status(holder)
        assert not [s for s in state if s["applied_at"] is None or s["changed"]]
        assert scalar(holder, "SELECT to_regclass('interactions') IS NOT NULL AND to_regclass('models') IS NOT NULL")
