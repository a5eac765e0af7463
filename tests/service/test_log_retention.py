"""The recommendation log's upkeep (jobs.log_retention): months ready ahead, old months dropped
whole, rows of a month without its partition kept until they too are old."""
from __future__ import annotations

from datetime import UTC, datetime

from jobs import log_retention


def add_answers(conn, *times: str) -> None:
    with conn, conn.cursor() as cur:
        for t in times:
            cur.execute("INSERT INTO recommendation_log (request_id, user_id, units, strategy, item_ids, scores, "
                        "created_at) VALUES ('r', 'u1', '{m}', 'target', '{i1}', '{0.5}', %s)", (t,))


def where(conn) -> dict[str, int]:
    with conn.cursor() as cur:
        cur.execute("SELECT tableoid::regclass::text, count(*) FROM recommendation_log GROUP BY 1")
        out = dict(cur.fetchall())
    conn.rollback()
    return out


def test_months_ahead_then_old_months_dropped(conn):
    # The test's clock is years past the machine's: the migration made partitions up to three
    # months past the real today, so none of these months has one yet, whatever the date.
    y = datetime.now(UTC).year + 3
    add_answers(conn, f"{y}-03-10", f"{y}-04-02", f"{y}-05-20")   # no partitions yet: the default one
    assert where(conn) == {"recommendation_log_default": 3}
    report = log_retention.run(conn, days=0, now=datetime(y, 4, 15, tzinfo=UTC))
    assert report.ready == [f"recommendation_log_y{y}m{m:02d}" for m in (4, 5, 6, 7)] and report.dropped == []
    assert where(conn) == {"recommendation_log_default": 1, f"recommendation_log_y{y}m04": 1,
                           f"recommendation_log_y{y}m05": 1}
    report = log_retention.run(conn, days=30, now=datetime(y, 6, 5, tzinfo=UTC))   # cutoff May 6th
    assert f"recommendation_log_y{y}m04" in report.dropped and f"recommendation_log_y{y}m05" not in report.dropped
    assert where(conn) == {f"recommendation_log_y{y}m05": 1}   # March's row, in the default one, is older too


def test_a_failed_upkeep_does_not_stop_the_nightly_training(conn, db_url, redis_url, monkeypatch, capsys):
    from cli.main import main

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setenv("ADAPTREC_DATABASE_URL", db_url)
    monkeypatch.setenv("ADAPTREC_REDIS_URL", redis_url)
    monkeypatch.setattr(log_retention, "run", broken)
    assert main(["train", "--all", "--quiet"]) == 0
    assert "upkeep failed (RuntimeError: disk full); training anyway" in capsys.readouterr().err
    with conn.cursor() as cur:
        cur.execute("SELECT job, outcome FROM job_runs ORDER BY run_id")
        runs = cur.fetchall()
    assert ("log_retention", "failed") in runs and ("train", "succeeded") in runs
