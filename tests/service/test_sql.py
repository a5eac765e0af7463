"""The recursive catalogue queries, the analyst views (migration 002) and sql/analyst.sql, on
tiny hand-made data sets whose answers are worked out by hand in the comments."""
from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from app.config import SQL_DIR
from app.infra import queries as q


def run(conn, sql: str, params=None) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall() if cur.description else []


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.fixture
def db(conn):
    # A runaway recursive query fails the test instead of hanging it.
    run(conn, "SET statement_timeout = '10s'")
    return conn


# ---- items_under_units / units_above_unit on cycles and diamonds ------------------------------
@pytest.fixture
def dag(db):
    """R -> X -> Z and R -> Y -> Z (a diamond; items in Z); A -> B -> C -> A (a cycle; one item each)."""
    run(db, """
        INSERT INTO units (unit_id) VALUES ('R'), ('X'), ('Y'), ('Z'), ('A'), ('B'), ('C');
        INSERT INTO unit_children (parent, child) VALUES
            ('R', 'X'), ('R', 'Y'), ('X', 'Z'), ('Y', 'Z'), ('A', 'B'), ('B', 'C'), ('C', 'A');
        INSERT INTO items (item_id, active) VALUES
            ('z1', true), ('z2', true), ('z_off', false), ('a1', true), ('b1', true), ('c1', true);
        INSERT INTO unit_items (unit_id, item_id) VALUES
            ('Z', 'z1'), ('Z', 'z2'), ('Z', 'z_off'), ('X', 'z1'),
            ('A', 'a1'), ('B', 'b1'), ('C', 'c1');""")
    return db


def under(conn, *units) -> list[str]:
    return [r["item_id"] for r in q.fetch_all(conn, "items_under_units", tenant="default", unit_ids=list(units))]


def test_items_under_a_diamond_come_once_and_inactive_ones_not_at_all(dag):
    # z1 is reachable three ways (R>X>Z, R>Y>Z, and directly in X); z_off is inactive.
    assert under(dag, "R") == ["z1", "z2"]
    assert under(dag, "Y") == ["z1", "z2"]
    assert under(dag, "X", "Y", "Z") == ["z1", "z2"]


def test_items_under_a_cycle_terminate(dag):
    assert under(dag, "A") == ["a1", "b1", "c1"]
    assert under(dag, "C") == ["a1", "b1", "c1"]
    assert under(dag, "nowhere") == []


def test_units_above_a_unit_terminate_on_a_cycle_nearest_first(dag):
    rows = [(r["unit_id"], r["depth"]) for r in q.fetch_all(dag, "units_above_unit", tenant="default", unit_id="C")]
    assert rows == [("C", 0), ("B", 1), ("A", 2)]
    rows = [(r["unit_id"], r["depth"]) for r in q.fetch_all(dag, "units_above_unit", tenant="default", unit_id="Z")]
    assert rows == [("Z", 0), ("X", 1), ("Y", 1), ("R", 2)]


# ---- the analyst views ----------------------------------------------------------------------
@pytest.fixture
def history(db):
    """Root > {X, Y} > Z (a diamond), Root > A > B > C > A (a cycle below the root), and P <-> Q
    (a cycle no root reaches). Three users, seven interactions over two UTC days."""
    run(db, """
        INSERT INTO units (unit_id, name) VALUES ('R', 'Root'), ('X', 'Ex'), ('Y', 'Why'), ('Z', 'Zed'),
            ('A', 'Ay'), ('B', 'Bee'), ('C', NULL), ('P', 'Pe'), ('Q', 'Qu');
        INSERT INTO unit_children (parent, child) VALUES ('R', 'X'), ('R', 'Y'), ('X', 'Z'), ('Y', 'Z'),
            ('R', 'A'), ('A', 'B'), ('B', 'C'), ('C', 'A'), ('P', 'Q'), ('Q', 'P');
        INSERT INTO items (item_id, kind, title, active) VALUES
            ('z1', 'question', 'Zed one', true), ('z2', 'question', 'Zed two', false),
            ('b1', 'question', 'Bee one', true), ('v1', 'video', 'Why video', true),
            ('o1', 'article', 'Orphan', true);
        INSERT INTO unit_items (unit_id, item_id) VALUES ('Z', 'z1'), ('Z', 'z2'), ('B', 'b1'), ('Y', 'v1');
        INSERT INTO users (user_id) VALUES ('u1'), ('u2'), ('u3');
        INSERT INTO interactions (event_id, user_id, item_id, kind, outcome, value, duration_ms, occurred_at) VALUES
            ('e1', 'u1', 'z1', 'attempt', 1, NULL, 1000, '2024-03-01 10:00Z'),
            ('e2', 'u1', 'z1', 'attempt', 0, NULL, 2000, '2024-03-01 10:05Z'),
            ('e3', 'u1', 'b1', 'attempt', 1, NULL, 3000, '2024-03-03 02:00Z'),
            ('e4', 'u2', 'z1', 'attempt', 1, NULL, 4000, '2024-03-01 12:00Z'),
            ('e5', 'u2', 'v1', 'view', NULL, 1.0, 60000, '2024-03-01 12:10Z'),
            ('e6', 'u2', 'v1', 'like', 1, 1.0, NULL, '2024-03-01 12:11Z'),
            ('e7', 'u1', 'v1', 'complete', 1, 1.0, 90000, '2024-03-03 03:00Z');""")
    # Days are UTC days whatever the session says: in New York e3 and e7 fall on 2 March.
    run(db, "SET TIME ZONE 'America/New_York'")
    return db


def test_unit_paths_cover_every_route_and_stop_at_cycles(history):
    rows = run(history, "SELECT unit_id, root_id, depth, path_ids, path FROM unit_paths ORDER BY path_ids")
    assert rows == [
        ("R", "R", 0, ["R"], "Root"),
        ("A", "R", 1, ["R", "A"], "Root > Ay"),
        ("B", "R", 2, ["R", "A", "B"], "Root > Ay > Bee"),
        ("C", "R", 3, ["R", "A", "B", "C"], "Root > Ay > Bee > C"),   # C has no name: its id; C -> A is cut
        ("X", "R", 1, ["R", "X"], "Root > Ex"),
        ("Z", "R", 2, ["R", "X", "Z"], "Root > Ex > Zed"),
        ("Y", "R", 1, ["R", "Y"], "Root > Why"),
        ("Z", "R", 2, ["R", "Y", "Z"], "Root > Why > Zed"),            # the diamond: Z twice
    ]
    assert all(len(set(r[3])) == len(r[3]) for r in rows)            # no path repeats a unit
    # P and Q sit on a cycle no root reaches: no root-to-unit path, so no row


def test_unit_paths_terminate_on_a_cycle_with_a_way_in(db):
    # Every unit of the 4-cycle K1 -> K2 -> K3 -> K4 -> K1 is also a child of the root T.
    run(db, """
        INSERT INTO units (unit_id) VALUES ('T'), ('K1'), ('K2'), ('K3'), ('K4');
        INSERT INTO unit_children VALUES ('K1', 'K2'), ('K2', 'K3'), ('K3', 'K4'), ('K4', 'K1'),
            ('T', 'K1'), ('T', 'K2'), ('T', 'K3'), ('T', 'K4');""")
    rows = run(db, "SELECT path_ids FROM unit_paths")
    # from T: each of the 4 entry points, then 0..3 further steps round the cycle = 4 * 4 paths + T
    assert len(rows) == 17
    assert all(len(set(p)) == len(p) for (p,) in rows)


def test_attempt_history_has_titles_outcomes_and_every_unit_path(history):
    rows = run(history, "SELECT event_id, user_id, item_title, outcome, occurred_at, unit_paths "
                        "FROM attempt_history ORDER BY event_id")
    diamond = ["Root > Ex > Zed", "Root > Why > Zed"]
    assert rows == [
        ("e1", "u1", "Zed one", 1, utc("2024-03-01 10:00"), diamond),
        ("e2", "u1", "Zed one", 0, utc("2024-03-01 10:05"), diamond),
        ("e3", "u1", "Bee one", 1, utc("2024-03-03 02:00"), ["Root > Ay > Bee"]),
        ("e4", "u2", "Zed one", 1, utc("2024-03-01 12:00"), diamond),
    ]  # views, likes and completions are not attempts


def test_item_stats(history):
    rows = {r[0]: r[1:] for r in run(history, """
        SELECT item_id, attempts, learners, success_rate, first_attempt, last_attempt,
               views, likes, completions, users FROM item_stats""")}
    assert rows == {
        # z1: e1 (right), e2 (wrong) by u1, e4 (right) by u2 -> 2/3
        "z1": (3, 2, Decimal("0.6667"), utc("2024-03-01 10:00"), utc("2024-03-01 12:00"), 0, 0, 0, 2),
        "z2": (0, 0, None, None, None, 0, 0, 0, 0),
        "b1": (1, 1, Decimal("1.0000"), utc("2024-03-03 02:00"), utc("2024-03-03 02:00"), 0, 0, 0, 1),
        # v1: u2 viewed and liked, u1 completed
        "v1": (0, 0, None, None, None, 1, 1, 1, 2),
        "o1": (0, 0, None, None, None, 0, 0, 0, 0),
    }


def test_user_activity(history):
    rows = {r[0]: r[1:] for r in run(history, """
        SELECT user_id, interactions, attempts, success_rate, distinct_items, active_days,
               first_seen, last_seen FROM user_activity""")}
    assert rows == {
        # u1: e1 e2 e3 e7; attempts e1 e2 e3 (2 right); items z1 b1 v1; UTC days 1 and 3 March
        "u1": (4, 3, Decimal("0.6667"), 3, 2, utc("2024-03-01 10:00"), utc("2024-03-03 03:00")),
        # u2: e4 e5 e6; one attempt, right; items z1 v1; 1 March
        "u2": (3, 1, Decimal("1.0000"), 2, 1, utc("2024-03-01 12:00"), utc("2024-03-01 12:11")),
        "u3": (0, 0, None, 0, 0, None, None),
    }


def test_daily_volume(history):
    rows = run(history, "SELECT day, kind, interactions, users FROM daily_volume ORDER BY day, kind")
    assert rows == [
        (date(2024, 3, 1), "attempt", 3, 2),   # e1 e2 (u1), e4 (u2)
        (date(2024, 3, 1), "like", 1, 1),
        (date(2024, 3, 1), "view", 1, 1),
        (date(2024, 3, 3), "attempt", 1, 1),   # e3: 21:00 on 2 March in New York, 3 March in UTC
        (date(2024, 3, 3), "complete", 1, 1),
    ]


# ---- the named queries in sql/analyst.sql ---------------------------------------------------
def test_unit_success_rates_count_each_item_once_per_unit(history):
    rows = [(r["unit_id"], r["items"], r["attempts"], r["success_rate"])
            for r in q.fetch_all(history, "unit_success_rates", tenant="default", unit_id="R")]
    assert rows == [
        ("X", 2, 3, Decimal("0.6667")),   # z1 z2: 3 attempts at z1, 2 right
        ("Y", 3, 3, Decimal("0.6667")),   # z1 z2 via Z, and v1 (no attempts)
        ("Z", 2, 3, Decimal("0.6667")),
        ("R", 4, 4, Decimal("0.7500")),   # z1 z2 v1 b1, z1 once despite the diamond: 3 of 4 right
        ("A", 1, 1, Decimal("1.0000")),   # the cycle A > B > C > A: b1 under all three
        ("B", 1, 1, Decimal("1.0000")),
        ("C", 1, 1, Decimal("1.0000")),
    ]
    # starting inside the cycle terminates too, and a unit with nothing under it has no rate
    assert [(r["unit_id"], r["items"]) for r in q.fetch_all(history, "unit_success_rates", tenant="default",
                                                            unit_id="C")] == [
        ("A", 1), ("B", 1), ("C", 1)]
    assert [(r["unit_id"], r["attempts"], r["success_rate"])
            for r in q.fetch_all(history, "unit_success_rates", tenant="default", unit_id="P")] == [("P", 0, None),
                                                                                                    ("Q", 0, None)]


def test_user_history_newest_first(history):
    rows = q.fetch_all(history, "user_history", tenant="default", user_id="u1", limit=2)
    assert [(r["item_id"], r["outcome"], r["unit_paths"]) for r in rows] == [
        ("b1", 1, ["Root > Ay > Bee"]), ("z1", 0, ["Root > Ex > Zed", "Root > Why > Zed"])]


def test_hardest_items_under_unit(history):
    rows = q.fetch_all(history, "hardest_items_under_unit", tenant="default", unit_id="R", min_attempts=1, limit=10)
    assert [(r["item_id"], r["attempts"], r["learners"], r["success_rate"]) for r in rows] == [
        ("z1", 3, 2, Decimal("0.6667")), ("b1", 1, 1, Decimal("1.0000"))]
    rows = q.fetch_all(history, "hardest_items_under_unit", tenant="default", unit_id="A", min_attempts=2, limit=10)
    assert rows == []


def test_item_paths(history):
    rows = q.fetch_all(history, "item_paths", tenant="default", item_id="z1")
    assert [(r["unit_id"], r["path"]) for r in rows] == [("Z", "Root > Ex > Zed"), ("Z", "Root > Why > Zed")]


# One set of parameters per named query of analyst.sql: a new query without an entry fails here.
ANALYST_PARAMS = {
    "unit_success_rates": {"unit_id": "R"},
    "user_history": {"user_id": "u1", "limit": 10},
    "hardest_items_under_unit": {"unit_id": "R", "min_attempts": 1, "limit": 5},
    "item_paths": {"item_id": "z1"},
}


def test_every_analyst_query_runs(history):
    names = set(q._parse((SQL_DIR / "analyst.sql").read_text(), "analyst.sql"))
    assert names == set(ANALYST_PARAMS)
    for name, params in ANALYST_PARAMS.items():
        assert q.fetch_all(history, name, tenant="default", **params), name
        assert q.all_queries()[name].doc, f"{name} has no description"


def test_every_view_answers_on_an_empty_database(db):
    for view in ("unit_paths", "attempt_history", "item_stats", "user_activity", "daily_volume"):
        assert run(db, f"SELECT * FROM {view}") == []
