"""The dashboard's knowledge views (issue 26): a learner's skills with their estimates, intervals,
mastered and due, as the knowledge endpoint answers them; a unit's mastery across learners from
the nightly snapshot. In-process against real Postgres and Redis, on test_knowledge's course (a
practice model stored with known parameters)."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest

from app.access import keys
from app.dashboard import knowledge as dash_knowledge
from app.serving.context import RequestContext
from jobs import knowledge as snapshot_job
from tests.service.test_dashboard_access import sign_in
from tests.service.test_knowledge import MIXED, NOW, STRONG, WEAK, Course


@pytest.fixture
def course(app, conn):
    return Course(app, conn).build(skill_attrs={"s3": {"mastery": {"threshold": 0.6, "review": 0.5}}})


def context(course, now=NOW) -> RequestContext:
    return RequestContext(course.conn, course.tenant, course.cache, course.models, now=now)


def test_state_of_reads_mastered_then_not_started_then_due():
    assert dash_knowledge.state_of(True, 5, NOW - timedelta(days=1), NOW) == "mastered"
    assert dash_knowledge.state_of(False, 0, None, NOW) == "not started"
    assert dash_knowledge.state_of(False, 3, NOW, NOW) == "due"
    assert dash_knowledge.state_of(False, 3, NOW + timedelta(seconds=1), NOW) == "learning"
    assert dash_knowledge.state_of(False, 3, None, NOW) == "learning"


def test_the_learners_knowledge_is_the_endpoints_with_a_state_and_an_interval_chart(course):
    user = course.learner(s1=(STRONG, 0.1), s2=(WEAK, 0.1), s3=([1, 1, 0, 1], 0.1))
    known = course.knows(user, ["course"])
    shown = dash_knowledge.learner(context(course), user, "course")
    rows = {r["unit_id"]: r for r in shown["rows"]}
    assert list(rows) == ["course", "s1", "s2", "s3"]
    for unit_id, r in rows.items():
        assert (r["p"], r["low"], r["high"], r["mastered"]) == (known[unit_id]["p"], known[unit_id]["low"],
                                                              known[unit_id]["high"], known[unit_id]["mastered"])
    # s2 answered wrongly throughout: p already under the review threshold, so due now (the API's meaning)
    assert [rows[s]["state"] for s in ("s1", "s2", "s3")] == ["mastered", "due", "learning"]
    assert shown["skills"] == 3 and shown["counts"] == {"mastered": 1, "due": 1, "learning": 1, "not started": 0}
    assert rows["s3"]["threshold"] == 0.6 and rows["s1"]["threshold"] == 0.8   # each unit's own settings
    chart = shown["chart"]
    points = re.findall(r'<g class="series (k-[a-z]+)" data-name="([^"]+)">.*?data-x="([^"]+)" data-low="([^"]+)"',
                        chart)
    assert [(css, name) for css, name, *_ in points] == [(dash_knowledge.STATE_CSS[rows["course"]["state"]], "course"),
                                                         ("k-mastered", "s1"), ("k-due", "s2"), ("k-learning", "s3")]
    for _, name, x, low in points:
        assert float(x) == rows[name]["p"] and float(low) == rows[name]["low"]
    assert sorted(float(v) for v in re.findall(r'<line class="mark"[^>]*data-x="([^"]+)"', chart)) == [0.6, 0.8]


def test_a_skill_left_long_enough_is_due(course):
    user = course.learner(s1=(MIXED + STRONG[:6], 2.0))
    now = NOW + timedelta(days=200)                   # far past the forecast's fall below 0.7
    shown = {r["unit_id"]: r for r in dash_knowledge.learner(context(course, now), user, "course")["rows"]}
    assert shown["s1"]["state"] == "due" and shown["s1"]["due_at"] <= now


def test_the_learner_and_unit_pages_show_knowledge_and_mastery(course, app, client, conn):
    users = [course.learner(s1=(STRONG, 0.1)), course.learner(s1=(WEAK, 0.1)),
             course.learner({"cohort": "7b"}, s1=(STRONG, 0.2), s2=(STRONG, 0.2))]
    with conn:
        _, key = keys.create_key(conn, "dash", ["dashboard"])
    sign_in(client, key)
    page = client.get(f"/dashboard/learners?user_id={users[0]}&unit_id=course")
    assert page.status_code == 200
    section = page.text[page.text.index('id="knowledge"'):]
    assert section.count("<tr class=\"skill\"") == 3 and 'id="knowledge-table"' in section
    assert 'class="interval-chart' in section or "interval-chart" in section

    unit = client.get("/dashboard/models/s1")
    assert unit.status_code == 200 and 'id="no-snapshot"' in unit.text
    snapshot_job.run(conn, "default", NOW)
    unit = client.get("/dashboard/models/s1").text
    table = unit[unit.index('id="mastery-table"'):unit.index("</table>", unit.index('id="mastery-table"'))]
    cells = [re.findall(r"<td>([^<]*)</td>", row) for row in re.findall(r"<tr[^>]*>(.*?)</tr>", table)[1:]]
    by_cohort = {c[0]: c for c in cells}
    assert list(by_cohort) == ["(all)", "(none)", "7b"]
    assert by_cohort["(all)"][1:3] == ["3", "2"]          # three learners practised s1; two mastered it
    assert by_cohort["7b"][1:3] == ["1", "1"] and by_cohort["(none)"][1:3] == ["2", "1"]
    assert "line-chart" not in unit[unit.index('id="mastery"'):unit.index('id="objective-') if 'id="objective-' in
                                     unit else None]     # one snapshot: nothing to draw over time
    course_page = client.get("/dashboard/models/course").text        # the units below it, from the same snapshot
    below = course_page[course_page.index('id="below-mastery-table"'):]
    below = below[:below.index("</table>")]
    assert re.findall(r'<tr><td><a href="[^"]*">([^<]+)</a></td><td>(\d+)</td><td>(\d+)</td>', below) == [
        ("s1", "3", "2"), ("s2", "1", "1")]
    snapshot_job.run(conn, "default", NOW + timedelta(days=1))
    unit = client.get("/dashboard/models/s1").text
    mastery = unit[unit.index('id="mastery"'):]
    assert mastery.count('class="point"') >= 2        # the share mastered at each snapshot
