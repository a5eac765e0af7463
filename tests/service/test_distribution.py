"""The schema can be sharded (issue 15): the live catalogue and the request path's query plans
checked against Citus's rules (harness.distribution), and the checks shown to catch a violation."""
from __future__ import annotations

import re
from pathlib import Path

from app.infra import queries as q
from harness import distribution

APP = Path(__file__).resolve().parents[2] / "app"


def test_the_live_schema_can_be_distributed_by_learner(conn):
    assert distribution.violations(conn) == []


def test_the_check_names_what_citus_would_refuse(conn):
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE scratch_unclassified (x int)")
        cur.execute("CREATE UNIQUE INDEX interactions_event_global ON interactions (tenant, event_id)")
        cur.execute("ALTER TABLE calibration_reports ADD COLUMN user_id text, "
                    "ADD FOREIGN KEY (tenant, user_id) REFERENCES users (tenant, user_id)")
    found = distribution.violations(conn)   # reads, then rolls the changes back
    assert any("scratch_unclassified is not classified" in f for f in found), found
    assert any("interactions_event_global" in f and "does not include user_id" in f for f in found), found
    assert any(f.startswith("calibration_reports: foreign key") and "into the distributed table users" in f
               for f in found), found
    assert distribution.violations(conn) == []


def test_request_path_queries_over_learners_visit_one_learner(conn):
    for name, params in distribution.USER_KEYED.items():
        assert distribution.plan_violations(conn, name, params) == [], name


def test_the_plan_check_catches_a_query_over_every_learner(conn):
    found = distribution.plan_violations(conn, "item_success_rates", {"tenant": "default", "item_ids": ["i1"]})
    assert found and "without a user_id condition" in found[0]


def test_every_serving_query_over_a_big_table_is_classified():
    """A query the API (not the dashboard, not the jobs) runs over users, interactions or the
    recommendation log is keyed by learner, an insert, or a fan-out named with its reason."""
    names = set(q.all_queries())
    used = set()
    for path in APP.rglob("*.py"):
        if "dashboard" not in path.parts:
            used |= set(re.findall(r'"([a-z_]+)"', path.read_text())) & names
    known = set(distribution.USER_KEYED) | set(distribution.INSERTS) | set(distribution.FAN_OUT)
    unclassified = sorted(n for n in used if distribution.touched_tables(q.all_queries()[n].sql) and n not in known)
    assert unclassified == []
    assert {"user_recent_interactions", "insert_interactions", "item_success_rates"} <= used
    assert all(name in names for name in known)
