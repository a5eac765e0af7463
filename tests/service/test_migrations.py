"""Migrations on real, freshly created databases: from empty, again, concurrently, failing."""
from __future__ import annotations

import threading
from datetime import UTC, datetime

import psycopg2
import pytest

from app.infra import migrations
from app.infra.migrations import MIGRATION_LOCK_KEY, MigrationError, migrate
from harness.databases import scratch_database


@pytest.fixture
def empty_db(servers):
    with scratch_database(servers[0], "adaptrec_mig", migrated=False) as url:
        yield url


def tables(conn) -> set[str]:
    with conn.cursor() as cur:
        cur.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return {r[0] for r in cur.fetchall()}


def test_migrate_from_empty_then_again_is_a_no_op(empty_db):
    conn = psycopg2.connect(empty_db)
    applied = migrate(conn)
    assert [m.version for m in applied] == [m.version for m in migrations.discover()]
    assert {"users", "items", "units", "unit_children", "unit_items", "interactions", "models",
            "model_arrays", "experiments", "recommendation_log", "schema_migrations"} <= tables(conn)
    assert migrate(conn) == []
    assert all(row["applied_at"] is not None and not row["changed"] for row in migrations.status(conn))
    conn.close()


def test_two_concurrent_migrations_apply_each_file_once(empty_db):
    results, errors = [], []

    def run():
        conn = psycopg2.connect(empty_db)
        try:
            results.append(len(migrate(conn)))
        except Exception as exc:  # collected and asserted below
            errors.append(exc)
        finally:
            conn.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(results) == [0, len(migrations.discover())]


def test_a_held_lock_times_out_with_a_clear_message(empty_db):
    holder = psycopg2.connect(empty_db)
    with holder.cursor() as cur:
        cur.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
    conn = psycopg2.connect(empty_db)
    with pytest.raises(MigrationError, match="migration lock"):
        migrate(conn, lock_timeout_ms=200)
    holder.close()
    assert len(migrate(conn)) == len(migrations.discover())
    conn.close()


def test_a_failing_migration_rolls_back_and_is_not_recorded(empty_db, tmp_path):
    (tmp_path / "001_ok.sql").write_text("CREATE TABLE good (id int);")
    (tmp_path / "002_bad.sql").write_text("CREATE TABLE half (id int);\nSELECT no_such_function();")
    conn = psycopg2.connect(empty_db)
    with pytest.raises(MigrationError, match=r"002_bad\.sql failed and was rolled back"):
        migrate(conn, directory=tmp_path)
    assert "good" in tables(conn) and "half" not in tables(conn)
    assert [r["applied_at"] is not None for r in migrations.status(conn, directory=tmp_path)] == [True, False]
    conn.close()


def test_misnamed_migration_file_is_refused(tmp_path):
    (tmp_path / "first.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match=r"NNN_name\.sql"):
        migrations.discover(tmp_path)


def test_the_log_moves_into_month_partitions_and_old_months_can_be_dropped(empty_db, tmp_path):
    """009 on a database with answers of two months: every row kept in its month's partition,
    ids go on, views on the log read the new table; a month created later takes its rows out of
    the default partition; retention drops whole months. Before 009, the distribution check
    names both keys Citus would refuse."""
    from harness import distribution

    for m in migrations.discover():
        if m.version < 9:
            (tmp_path / m.path.name).write_text(m.sql)
    conn = psycopg2.connect(empty_db)
    migrate(conn, directory=tmp_path)
    before = distribution.violations(conn)
    assert any(f.startswith("interactions: primary key") for f in before), before
    assert any(f.startswith("recommendation_log: primary key") for f in before), before
    with conn, conn.cursor() as cur:
        cur.execute("""INSERT INTO recommendation_log (request_id, user_id, units, strategy, item_ids, scores,
                                                       created_at)
                       SELECT 'r' || n, 'u' || (n % 3), '{m}', 'target', '{i1}', '{0.5}',
                              timestamptz '2026-09-20' + n * interval '1 day'
                       FROM generate_series(1, 20) AS n""")
    migrate(conn)
    assert distribution.violations(conn) == []
    with conn.cursor() as cur:
        cur.execute("SELECT tableoid::regclass::text, count(*), max(id) FROM recommendation_log GROUP BY 1 ORDER BY 1")
        rows = cur.fetchall()
        assert [(r[0], r[1]) for r in rows] == [("recommendation_log_y2026m09", 10),
                                                ("recommendation_log_y2026m10", 10)]
        late = datetime.now(UTC).year + 5   # past the months the migration made ahead of today
        cur.execute("INSERT INTO recommendation_log (request_id, user_id, units, strategy, item_ids, scores, "
                    "created_at) VALUES ('late', 'u1', '{m}', 'target', '{i1}', '{0.5}', %s) RETURNING id",
                    (f"{late}-05-02",))
        assert cur.fetchone()[0] == 21
        cur.execute("SELECT count(*) FROM variant_outcomes")
        cur.execute("SELECT recommendation_log_add_month(%s)", (f"{late}-05-15",))
        assert cur.fetchone()[0] == f"recommendation_log_y{late}m05"
        cur.execute("SELECT tableoid::regclass::text FROM recommendation_log WHERE request_id = 'late'")
        assert cur.fetchone()[0] == f"recommendation_log_y{late}m05"
        cur.execute("SELECT count(*) FROM recommendation_log_default")
        assert cur.fetchone()[0] == 0
        cur.execute("SELECT * FROM recommendation_log_drop_before('2026-11-01')")
        assert sorted(r[0] for r in cur.fetchall()) == ["recommendation_log_y2026m09", "recommendation_log_y2026m10"]
        cur.execute("SELECT count(*) FROM recommendation_log")
        assert cur.fetchone()[0] == 1
    conn.commit()
    conn.close()
