"""The nightly job's one-at-a-time lock (jobs.train), on a real Postgres: free the moment a run
ends, so a run started right after (cron, a retry) trains instead of skipping as locked out."""
from __future__ import annotations

import psycopg2

from jobs.train import TRAIN_LOCK_KEY, release


def _try_lock(conn) -> bool:
    with conn.cursor() as cur:
        cur.execute("SELECT pg_try_advisory_lock(%s)", (TRAIN_LOCK_KEY,))
        return cur.fetchone()[0]


def test_the_lock_is_free_the_moment_a_run_releases_it(db_url):
    other = psycopg2.connect(db_url)
    other.autocommit = True
    try:
        for _ in range(50):   # closing the session alone freed it only once the server had ended it
            holder = psycopg2.connect(db_url)
            holder.autocommit = True
            assert _try_lock(holder)
            assert not _try_lock(other)
            release(holder, held=True)
            assert holder.closed
            assert _try_lock(other)
            with other.cursor() as cur:
                cur.execute("SELECT pg_advisory_unlock(%s)", (TRAIN_LOCK_KEY,))
    finally:
        other.close()


def test_a_run_that_never_held_it_leaves_anothers_lock_alone(db_url):
    holder, loser = psycopg2.connect(db_url), psycopg2.connect(db_url)
    holder.autocommit = loser.autocommit = True
    try:
        assert _try_lock(holder) and not _try_lock(loser)
        release(loser, held=False)
        with holder.cursor() as cur:
            cur.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                        "AND pid = pg_backend_pid()")
            assert cur.fetchone()[0] == 1
    finally:
        holder.close()
