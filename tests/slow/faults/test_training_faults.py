"""The training job killed mid-run, and training jobs and migrations started twice at once."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from app.config import PROJECT_ROOT
from app.infra.migrations import MIGRATION_LOCK_KEY, discover, status
from harness.databases import scratch_database
from jobs.train import TRAIN_LOCK_KEY
from tests.slow.faults.stack import ROOT, Stack, pg, recommend, rows, scalar, server_env, wait_until

ACTIVE_MODELS = """SELECT unit_id, objective, tag, array_agg(model_id ORDER BY model_id)
                   FROM models WHERE status = 'active' GROUP BY unit_id, objective, tag"""


def active_model(stack: Stack) -> int:
    with pg(stack.db_url) as conn:
        return scalar(conn, "SELECT model_id FROM models WHERE unit_id = %s AND objective = 'practice' "
                            "AND tag = 'default' AND status = 'active'", (ROOT,))


# ---- the training job killed mid-run ------------------------------------------------------------
def adaptrec(stack: Stack, *args: str, log: Path, extra_env: dict | None = None) -> subprocess.Popen:
    env = {**os.environ, **server_env(stack), **(extra_env or {})}
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
    finished = time.monotonic()  # the activation committed before the job exited
    assert "activated" in output.read_text()
    new = active_model(stack)
    assert new > old
    with pg(stack.db_url) as conn:
        assert_one_whole_active_model_per_unit(conn)
    # Every worker re-checks the active model once a second and switches without a restart: a
    # second after the job, each answer (on a new connection, so any worker) comes from the new one.
    time.sleep(max(0.0, finished + 1.05 - time.monotonic()))
    served = [recommend(stack, "fault-train-learner").body["model"]["model_id"] for _ in range(12)]
    assert served == [new] * 12, served
    print(f"\ntraining killed {killed_after:.1f} s into fitting ({fitting - launched:.1f} s after "
          f"launch): model {old} kept serving, rows stored by the killed run: {newer}; next run activated {new}")


# ---- jobs started twice at once -----------------------------------------------------------------
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
