"""The demo generator: deterministic, idempotent, a DAG catalogue, and a known logistic truth."""
from __future__ import annotations

import re

import numpy as np
import psycopg2
import pytest

from app.infra import queries as q
from harness.databases import scratch_database
from jobs.demo import ROOT_UNIT, DemoConfig, DemoError, build, generate_demo
from tests.database import empty_database

pytestmark = pytest.mark.slow  # generates whole demo data sets

SMALL = DemoConfig(seed=3, learners=300, attempts=40_000, engagements=5_000)
OTHER_SEED = DemoConfig(seed=4, learners=300, attempts=40_000, engagements=5_000)


def scalar(conn, sql: str, params=None):
    with conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchone()[0]


def q_rows(conn, sql, params=None):
    with conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


def checksum(conn) -> str:
    """One hash over every stored interaction, independent of the serial ids."""
    return scalar(conn, """
        SELECT md5(string_agg(concat_ws('|', event_id, user_id, item_id, kind, outcome, value,
                                        duration_ms, extract(epoch FROM occurred_at)), ',' ORDER BY event_id))
        FROM interactions""")


@pytest.fixture(scope="module")
def loaded_db(servers):
    """One database holding the SMALL demo, generated once for the tests that only read it (or
    check that nothing changes); tests that write make their own."""
    with scratch_database(servers[0], "adaptrec_demo") as url:
        conn = psycopg2.connect(url)
        report = generate_demo(conn, SMALL)
        conn.close()
        yield url, report


@pytest.fixture
def loaded(loaded_db):
    url, report = loaded_db
    conn = psycopg2.connect(url)
    yield conn, report
    conn.rollback()
    conn.close()


# ---- in memory ------------------------------------------------------------------------------
def test_same_seed_gives_identical_arrays_and_another_seed_does_not():
    one, two, other = build(SMALL), build(SMALL), build(OTHER_SEED)
    assert np.array_equal(one.catalogue.difficulty, two.catalogue.difficulty)
    assert np.array_equal(one.learners.ability, two.learners.ability)
    assert one.learners.attrs == two.learners.attrs and one.catalogue.items == two.catalogue.items
    for ea, eb in ((one.attempts, two.attempts), (one.engagements, two.engagements)):
        for name in ("user", "item_ids", "kind", "outcome", "duration_ms", "occurred"):
            assert np.array_equal(getattr(ea, name), getattr(eb, name)), name
    assert not np.array_equal(one.catalogue.difficulty, other.catalogue.difficulty)
    assert not np.array_equal(one.learners.ability, other.learners.ability)
    assert not np.array_equal(one.attempts.outcome, other.attempts.outcome)


def test_event_counts_do_not_change_the_catalogue_or_the_learners():
    more = build(DemoConfig(seed=3, learners=300, attempts=50_000, engagements=100))
    base = build(SMALL)
    assert np.array_equal(more.catalogue.difficulty, base.catalogue.difficulty)
    assert np.array_equal(more.learners.ability, base.learners.ability)


def test_attempts_are_in_order_per_learner_within_the_window():
    data = build(SMALL)
    a = data.attempts
    same = a.user[1:] == a.user[:-1]
    assert (a.occurred[1:][same] > a.occurred[:-1][same]).all()
    assert a.occurred.max() < np.datetime64("2025-01-06T00:00:00")
    assert a.occurred.min() > np.datetime64("2024-09-01T00:00:00")
    # heavy-tailed activity: the busiest learner does many times the median
    per_user = np.bincount(a.user)
    assert per_user.min() >= 1 and per_user.max() > 5 * np.median(per_user)


def test_levels_make_courses_and_each_learner_studies_their_own():
    """The scale run's catalogue (--levels): root > subject > level > chapter > section, ~2,000
    items per level; a learner's attempts and lessons all come from the level they study; one
    level is the classic demo, unchanged."""
    data = build(DemoConfig(seed=3, learners=400, attempts=20_000, engagements=3_000, levels=3))
    cat = data.catalogue
    kinds = [u[2] for u in cat.units]
    assert kinds.count("course") == 9 and kinds.count("section") == 9 * 24
    assert 3 * 1900 < len(cat.items) < 3 * 2200
    assert ("demo.math", "demo.math.l2") in cat.children and ("demo.math.l2", "demo.math.l2.1") in cat.children
    levels = data.learners.level
    assert set(levels.tolist()) == {0, 1, 2}
    assert all(a["level"] == lv + 1 for a, lv in zip(data.learners.attrs, levels.tolist()))
    for events in (data.attempts, data.engagements):
        studied = np.array([f".l{lv + 1}." for lv in levels[events.user]])
        assert all(s in item for s, item in zip(studied.tolist(), events.item_ids.tolist()))
    one = build(SMALL)
    assert "levels" not in SMALL.as_attrs() and not any(u[2] == "course" for u in one.catalogue.units)


@pytest.mark.parametrize("bad", [DemoConfig(seed=-1), DemoConfig(learners=0), DemoConfig(attempts=0),
                                 DemoConfig(engagements=-1), DemoConfig(levels=0), DemoConfig(levels=21)])
def test_bad_configs_are_refused(bad):
    with pytest.raises(DemoError):
        build(bad)


# ---- in the database ------------------------------------------------------------------------
def test_counts_match_the_config(loaded):
    conn, report = loaded
    assert report.created["interactions"] == SMALL.attempts + SMALL.engagements
    assert scalar(conn, "SELECT count(*) FROM interactions WHERE kind = 'attempt'") == SMALL.attempts
    assert scalar(conn, "SELECT count(*) FROM interactions WHERE kind <> 'attempt'") == SMALL.engagements
    assert scalar(conn, "SELECT count(*) FROM users") == SMALL.learners
    assert scalar(conn, "SELECT count(*) FROM units WHERE kind = 'subject'") == 3
    assert scalar(conn, "SELECT count(*) FROM units WHERE kind = 'section'") == 72
    questions = scalar(conn, "SELECT count(*) FROM items WHERE kind = 'question'")
    assert 72 * 20 <= questions <= 72 * 30
    assert scalar(conn, "SELECT count(*) FROM items WHERE kind IN ('video', 'article')") == 144
    ids = [r[0] for r in q_rows(conn, "SELECT event_id FROM interactions ORDER BY event_id LIMIT 3")]
    assert all(re.fullmatch(rf"{ROOT_UNIT}:3:[ae]:\d+", i) for i in ids)
    assert "Q" in scalar(conn, "SELECT title FROM items WHERE item_id = %s", (f"{ROOT_UNIT}.math.2.3.q17",))


def test_sample_ids_exist(loaded):
    conn, report = loaded
    assert scalar(conn, "SELECT kind FROM units WHERE unit_id = %s", (report.sample_unit,)) == "section"
    assert scalar(conn, "SELECT count(*) FROM interactions WHERE user_id = %s", (report.sample_user,)) > 0
    assert scalar(conn, "SELECT kind FROM items WHERE item_id = %s", (report.sample_item,)) == "question"
    assert "seed 3" in report.summary()


def test_second_run_adds_nothing(loaded):
    conn, _ = loaded
    before = checksum(conn)
    again = generate_demo(conn, SMALL)
    assert all(n == 0 for n in again.created.values()), again.created
    assert "nothing" in again.summary()
    assert checksum(conn) == before


def test_same_seed_gives_the_same_rows_in_a_fresh_database(conn, db_schema):
    generate_demo(conn, SMALL)
    first = checksum(conn)
    empty_database(conn, db_schema)
    generate_demo(conn, SMALL)
    assert checksum(conn) == first
    empty_database(conn, db_schema)
    generate_demo(conn, OTHER_SEED)
    assert checksum(conn) != first


def test_another_config_is_refused_and_changes_nothing(loaded):
    conn, _ = loaded
    before = checksum(conn)
    with pytest.raises(DemoError, match="fresh database"):
        generate_demo(conn, DemoConfig(seed=3, learners=300, attempts=40_001, engagements=5_000))
    assert checksum(conn) == before


def test_hierarchy_is_a_dag_with_a_diamond_and_every_question_under_the_root(loaded):
    conn, _ = loaded
    units = [r[0] for r in q_rows(conn, "SELECT unit_id FROM units")]
    assert q.fetch_all(conn, "cycle_through_units", tenant="default", unit_ids=units) == []
    # a diamond: a section with two parents (its chapter and the subject's Review chapter)
    section = f"{ROOT_UNIT}.math.1.4"
    parents = [r[0] for r in q_rows(conn, "SELECT parent FROM unit_children WHERE child = %s ORDER BY 1",
                                     (section,))]
    assert parents == [f"{ROOT_UNIT}.math.1", f"{ROOT_UNIT}.math.review"]
    above = {r["unit_id"] for r in q.fetch_all(conn, "units_above_unit", tenant="default", unit_id=section)}
    assert {ROOT_UNIT, f"{ROOT_UNIT}.math"} <= above
    under_root = {r["item_id"] for r in q.fetch_all(conn, "items_under_units", tenant="default", unit_ids=[ROOT_UNIT])}
    questions = {r[0] for r in q_rows(conn, "SELECT item_id FROM items WHERE kind = 'question'")}
    assert questions <= under_root
    assert scalar(conn, "SELECT count(*) FROM items") == len(under_root)


def test_ground_truth_is_stored(loaded):
    conn, _ = loaded
    attrs = scalar(conn, "SELECT attrs FROM items WHERE item_id = %s", (f"{ROOT_UNIT}.phys.3.2.q5",))
    assert attrs["skill"] == f"{ROOT_UNIT}.phys.3.2"
    assert attrs["difficulty_label"] in ("easy", "medium", "hard")
    assert isinstance(attrs["true_difficulty"], float)
    user = scalar(conn, "SELECT attrs FROM users ORDER BY user_id LIMIT 1")
    assert set(user["true_ability"]) == {f"{ROOT_UNIT}.math", f"{ROOT_UNIT}.phys", f"{ROOT_UNIT}.chem"}
    assert 9 <= user["grade"] <= 12 and len(user["country"]) == 2
    # section means rise through each chapter
    means = q_rows(conn, """
        SELECT (attrs ->> 'mean_difficulty')::float8 FROM units
        WHERE kind = 'section' AND attrs ->> 'chapter' = %s ORDER BY unit_id""", (f"{ROOT_UNIT}.chem.2",))
    assert [m[0] for m in means] == sorted(m[0] for m in means)


def test_success_rate_falls_with_difficulty(loaded):
    conn, _ = loaded
    rates = [r[1] for r in q_rows(conn, """
        SELECT tercile, avg(outcome)::float8 FROM (
            SELECT i.outcome, ntile(3) OVER (ORDER BY (it.attrs ->> 'true_difficulty')::float8) AS tercile
            FROM interactions i JOIN items it USING (item_id) WHERE i.kind = 'attempt') t
        GROUP BY tercile ORDER BY tercile""")]
    assert rates[0] > rates[1] + 0.05 > rates[2] + 0.1, rates


def test_outcomes_follow_the_stored_logistic_truth(loaded):
    conn, _ = loaded
    predicted, observed = q_rows(conn, """
        SELECT avg(1 / (1 + exp(-((u.attrs -> 'true_ability' ->> (it.attrs ->> 'subject'))::float8
                                  - (it.attrs ->> 'true_difficulty')::float8)))),
               avg(i.outcome)::float8
        FROM interactions i JOIN items it USING (item_id) JOIN users u USING (user_id)
        WHERE i.kind = 'attempt'""")[0]
    assert abs(predicted - observed) < 0.01, (predicted, observed)


def test_engagement_favours_popular_lessons_and_strong_subjects(loaded):
    conn, _ = loaded
    kinds = dict(q_rows(conn, "SELECT kind, count(*) FROM interactions WHERE kind <> 'attempt' GROUP BY kind"))
    assert set(kinds) == {"view", "like", "complete"}
    assert scalar(conn, """SELECT bool_and(value = 1.0 AND (outcome = 1) = (kind <> 'view')
                                           AND (outcome IS NULL) = (kind = 'view'))
                           FROM interactions WHERE kind <> 'attempt'""")
    counts = [r[0] for r in q_rows(conn, """
        SELECT count(*) FROM interactions i JOIN items it USING (item_id)
        WHERE i.kind <> 'attempt' GROUP BY i.item_id ORDER BY 1 DESC""")]
    assert counts[0] > 5 * counts[len(counts) // 2]
    # a learner's engagement lands in their strongest subject more often than in their weakest
    strongest, weakest = q_rows(conn, """
        WITH ranked AS (
            SELECT u.user_id, s.key AS subject,
                   rank() OVER (PARTITION BY u.user_id ORDER BY s.value::float8 DESC) AS r
            FROM users u, jsonb_each_text(u.attrs -> 'true_ability') s)
        SELECT count(*) FILTER (WHERE r.r = 1), count(*) FILTER (WHERE r.r = 3)
        FROM interactions i JOIN items it USING (item_id)
        JOIN ranked r ON r.user_id = i.user_id AND r.subject = it.attrs ->> 'subject'
        WHERE i.kind <> 'attempt'""")[0]
    assert strongest > 1.5 * weakest
