"""Each test starts from the database as the migrations left it (tests/database.py): whatever one
test writes, in any table, is gone before the next. The first two tests run in this order: the
second checks what the first left behind."""
from __future__ import annotations

import pytest

from tests.database import MIGRATED_DATA, children_first

WRITTEN: list[dict[str, int]] = []   # what the first test wrote, for the second to look for


def rows_per_table(conn, tables) -> dict[str, int]:
    counts = {}
    with conn.cursor() as cur:
        for table in tables:
            cur.execute(f'SELECT count(*) FROM "{table}"')
            counts[table] = cur.fetchone()[0]
    conn.rollback()
    return counts


def test_a_test_writes_where_the_hand_kept_list_did_not_reach(conn, db_schema):
    with conn, conn.cursor() as cur:
        cur.execute("""INSERT INTO request_rollup (source, taken_at, overall, endpoints)
                       VALUES ('host:1', now(), '{}', '{}')""")
        cur.execute("INSERT INTO users (user_id) VALUES ('leaky-learner')")
        cur.execute("""INSERT INTO knowledge_snapshots (tenant, user_id, unit_id, as_of, mastered, attempts, correct)
                       VALUES ('default', 'leaky-learner', 'u', now(), false, 1, 0)""")
        cur.execute("""INSERT INTO dashboard_sessions (token_hash, key_id, key_name, key_check, scopes, key_tenant,
                                                       tenant, csrf_token, expires_at)
                       VALUES (repeat('a', 64), 'env-1', 'k', 'c', '{dashboard}', NULL, 'default', 't',
                               now() + interval '1 hour')""")
        cur.execute("INSERT INTO job_runs (job) VALUES ('leak')")    # and moves its id sequence on
        cur.execute("INSERT INTO tenants (tenant) VALUES ('leaky-tenant')")
        cur.execute("""UPDATE tenants SET name = 'renamed', settings = '{"totara": true}' WHERE tenant = 'default'""")
    written = {table: n for table, n in rows_per_table(conn, db_schema.tables).items() if n}
    assert {"request_rollup", "users", "knowledge_snapshots", "dashboard_sessions", "job_runs"} <= set(written)
    WRITTEN.append(written)


def test_the_next_test_finds_none_of_it(conn, db_schema):
    if not WRITTEN:
        pytest.skip("checks what the test above it wrote: run the module, not this test alone")
    assert rows_per_table(conn, db_schema.tables) == dict.fromkeys(db_schema.tables, 0)
    with conn.cursor() as cur:
        cur.execute("SELECT tenant, name, settings::text FROM tenants ORDER BY tenant")
        assert tuple(cur.fetchall()) == db_schema.tenants == (("default", "the default tenant", "{}"),)
        cur.execute("SELECT tenant FROM catalog_state")
        assert cur.fetchall() == [("default",)]
        cur.execute("INSERT INTO job_runs (job) VALUES ('again') RETURNING run_id")
        assert cur.fetchone()[0] == 1      # ids start again at 1, as after TRUNCATE ... RESTART IDENTITY
    conn.commit()


def test_the_tables_to_empty_are_every_table_of_the_migrated_schema(conn, db_schema):
    with conn.cursor() as cur:
        cur.execute("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
        every = {r[0] for r in cur.fetchall()}
        cur.execute("SELECT inhrelid::regclass::text FROM pg_inherits")
        partitions = {r[0] for r in cur.fetchall()}
        cur.execute("""SELECT DISTINCT child.relname, parent.relname FROM pg_constraint k
                       JOIN pg_class child ON child.oid = k.conrelid JOIN pg_class parent ON parent.oid = k.confrelid
                       WHERE k.contype = 'f' AND NOT child.relispartition""")
        references = cur.fetchall()
    conn.rollback()
    assert set(db_schema.tables) == every - partitions - set(MIGRATED_DATA)
    assert {"request_rollup", "dashboard_sessions", "knowledge_snapshots", "recommendation_log"} \
        <= set(db_schema.tables)
    position = {table: k for k, table in enumerate(db_schema.tables)}
    for child, parent in references:
        if child != parent and parent in position:
            assert position[child] < position[parent], (child, parent)   # rows go before those they reference


def test_children_come_before_the_tables_they_reference_and_a_cycle_is_named():
    assert children_first(["a", "b", "c", "d"], [("c", "b"), ("b", "a"), ("a", "a"), ("d", "x")]) == \
        ("c", "d", "b", "a")
    with pytest.raises(RuntimeError, match=r"cycle among \['a', 'b'\]"):
        children_first(["a", "b"], [("a", "b"), ("b", "a")])
