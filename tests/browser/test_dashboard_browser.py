"""The dashboard in a real browser: Playwright driving chromium against the service as
`adaptrec serve` runs it (gunicorn, 2 workers) on a small demo data set with trained models,
experiment traffic and a calibration report. Sign in, open every page, check the charts drew
what the database holds, start and stop an experiment, sign out and be refused. A screenshot of
every page goes to var/screenshots/dashboard/ (CI keeps var/ as its artefact).

One service and one browser for the whole module. The browser is the one `make test` found or
installed before the suite (harness/browser.py: Debian's chromium, else Playwright's own); none is
a failure, not a skip."""
from __future__ import annotations

import time
from datetime import UTC, datetime

import psycopg2
import pytest

from app.access import keys, tenants
from app.config import PROJECT_ROOT
from harness.browser import ADVICE, executable
from harness.dashboard_data import EXPERIMENT, calibrate, traffic, wait_until_logged
from harness.databases import scratch_database, scratch_redis_prefix
from harness.service import running_service
from jobs import knowledge as knowledge_snapshot
from jobs.demo import DemoConfig, generate_demo
from jobs.train import TrainConfig, run_training

pytestmark = pytest.mark.slow

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SHOTS = PROJECT_ROOT / "var" / "screenshots" / "dashboard"
KEY = "browser-test-operator-key-0123456789"


def db_rows(url: str, sql: str, *args) -> list[tuple]:
    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, args or None)
            return cur.fetchall()
    finally:
        conn.close()


@pytest.fixture(scope="module")
def demo(servers, tmp_path_factory):
    """A served demo: trained models, an experiment with traffic, a calibration report, a second tenant."""
    tmp = tmp_path_factory.mktemp("dashboard")
    with scratch_database(servers[0], "adaptrec_dash") as url, \
            scratch_redis_prefix(servers[1], "adaptrec-dash") as prefix:
        conn = psycopg2.connect(url)
        generate_demo(conn, DemoConfig(seed=3, learners=300, attempts=30_000, engagements=6_000))
        with conn:
            tenants.ensure(conn, "north-high", "North High School")
            _, serve_key = keys.create_key(conn, "lms", ["serve", "ingest"])
        conn.close()
        report = run_training(url, TrainConfig(max_trials=1, max_eval_users=60), units=["demo", "demo.math"],
                              progress=False)
        assert "activated" in {o.status for o in report.outcomes}, report.table()
        conn = psycopg2.connect(url)   # what `train --all` runs after training: the unit pages' mastery
        assert knowledge_snapshot.run(conn, "default", datetime.now(UTC)).rows > 0
        conn.close()
        with running_service(url, servers[1], KEY, tmp / "service.log", redis_prefix=prefix,
                             env={"ADAPTREC_METRICS_ROLLUP_S": "2"}) as service:
            # the workers' rollup thread writes its first snapshot: the overview counts from there
            deadline = time.monotonic() + 15
            while not db_rows(url, "SELECT 1 FROM request_rollup") and time.monotonic() < deadline:
                time.sleep(0.2)
            assert db_rows(url, "SELECT 1 FROM request_rollup"), "no request rollup within 15 s"
            learners = [r[0] for r in db_rows(url, "SELECT user_id FROM users ORDER BY user_id LIMIT 40")]
            sent = traffic(service.base_url, KEY, learners, "demo.math", rounds=2)
            assert wait_until_logged(url, sent["answers"]) >= sent["answers"]  # the log is written off the path
            assert calibrate(url, tmp / "reports") >= 1
            yield {"url": url, "base": service.base_url, "sent": sent, "learner": learners[0],
                   "serve_key": serve_key}


@pytest.fixture(scope="module")
def browser():
    found = executable()
    if found is None:
        pytest.fail(ADVICE)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(found), args=ARGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def page(browser, demo):
    """One signed-in tab for the tests below, in order."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    tab.set_default_timeout(15_000)
    yield tab
    context.close()


def shoot(tab, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    tab.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def sign_in(tab, base: str, key: str) -> None:
    tab.goto(base + "/dashboard/login")
    tab.fill("#api-key", key)
    tab.click("#sign-in")


def test_a_signed_out_browser_is_sent_to_sign_in_and_a_serve_key_is_refused(browser, demo):
    context = browser.new_context()
    tab = context.new_page()
    tab.goto(demo["base"] + "/dashboard/models")
    assert "/dashboard/login?next=/dashboard/models" in tab.url
    shoot(tab, "0-sign-in")
    tab.fill("#api-key", demo["serve_key"])
    tab.click("#sign-in")
    assert "needs 'dashboard' or 'admin'" in tab.inner_text("#problem")
    tab.goto(demo["base"] + "/dashboard")
    assert "/dashboard/login" in tab.url
    context.close()


def test_sign_in_and_the_overview_shows_health_jobs_freshness_and_volume(page, demo):
    sign_in(page, demo["base"], KEY)
    page.wait_for_url(demo["base"] + "/dashboard")
    active = db_rows(demo["url"], "SELECT count(*) FROM models WHERE status = 'active'")[0][0]
    assert f"of {active} active" in page.inner_text("#freshness")
    assert "up" in page.inner_text("#redis-status")
    jobs = page.inner_text("#job-runs")
    assert "train" in jobs and "calibrate" in jobs and "succeeded" in jobs
    bars = page.locator("svg.bar-chart rect.bar")
    assert bars.count() > 0
    day = "(occurred_at AT TIME ZONE 'UTC')::date"
    total = db_rows(demo["url"], f"SELECT sum(n) FROM (SELECT count(*) AS n FROM interactions GROUP BY {day} "
                                 f"ORDER BY {day} DESC LIMIT 30) latest")[0][0]
    assert page.inner_text("#volume-total").replace(",", "") == str(total)
    # an operator sees the request figures: at least the traffic sent after the first snapshot
    hour = page.inner_text("#request-figures tbody tr >> nth=0").split("\t")
    assert int(hour[1].replace(",", "")) >= 2 * demo["sent"]["answers"] + 1, hour
    assert page.locator("svg.bar-chart rect.bar[data-value]").count() > 96 - 1   # 15-minute slots and days
    shoot(page, "1-overview")


def test_the_models_pages_show_the_tree_and_a_units_versions(page, demo):
    page.click("nav >> text=Models")
    tree = page.inner_text("#unit-tree")
    assert "demo.math" in tree and "demo.phys" in tree
    shoot(page, "2-models")
    page.fill("#unit-search", "math")
    page.click("form.search button")
    rows = page.inner_text("#unit-tree")
    assert "demo.math" in rows and "demo.phys" not in rows
    page.goto(demo["base"] + "/dashboard/models/demo")
    model_id, auc = db_rows(demo["url"], "SELECT model_id, (metrics -> 'model' ->> 'auc')::float8 FROM models "
                                         "WHERE unit_id = 'demo' AND objective = 'practice' AND status = 'active'")[0]
    assert f"model {model_id} active" in page.inner_text("#objective-practice h2")
    dots = page.locator("#objective-practice svg.line-chart g[data-name='model auc'] circle")
    assert dots.count() >= 1
    assert float(dots.last.get_attribute("data-y")) == pytest.approx(auc)
    assert f"{auc:.3f}" in page.inner_text("#comparison-practice")
    shoot(page, "3-model")
    page.goto(demo["base"] + "/dashboard/models/demo.math")
    # the snapshot holds the learners' practised units (sections): demo.math's page lists those below it
    below = db_rows(demo["url"], "SELECT unit_id, count(*), count(*) FILTER (WHERE mastered) FROM knowledge_snapshots "
                                 "WHERE unit_id LIKE 'demo.math.%' GROUP BY unit_id ORDER BY unit_id")
    assert below
    rows = page.locator("#below-mastery-table tbody tr")
    assert rows.count() == min(len(below), 100)
    first = rows.first.locator("td")
    assert [first.nth(k).inner_text() for k in range(3)] == [below[0][0], f"{below[0][1]:,}", f"{below[0][2]:,}"]
    page.click(f"#below-mastery-table >> text={below[0][0]}")
    own = page.locator("#mastery-table tbody tr").first.locator("td")
    assert [own.nth(k).inner_text() for k in range(3)] == ["(all)", f"{below[0][1]:,}", f"{below[0][2]:,}"]
    shoot(page, "3b-unit-mastery")


def test_the_calibration_pages_draw_the_reliability_diagram_of_the_report(page, demo):
    page.click("nav >> text=Calibration")
    assert page.locator("#calibration-list tbody tr").count() == \
        db_rows(demo["url"], "SELECT count(*) FROM calibration_reports")[0][0]
    shoot(page, "4-calibration")
    model_id, variant, n, ece, buckets = db_rows(
        demo["url"], "SELECT model_id, variant, n, ece, buckets FROM calibration_reports "
                     "WHERE variant IS NOT NULL ORDER BY n DESC LIMIT 1")[0]
    page.goto(f"{demo['base']}/dashboard/calibration/{model_id}")
    figure = page.locator(f"figure[data-variant='{variant}']")
    dots = figure.locator("svg.reliability circle.point")
    assert dots.count() == sum(1 for b in buckets if b["n"])
    assert sum(int(d) for d in dots.evaluate_all("els => els.map(e => e.dataset.n)")) == n
    assert f"ECE {ece:.3f}" in figure.inner_text()
    assert page.locator("svg.line-chart circle.point").count() >= 1       # ECE over time
    shoot(page, "5-calibration-model")


def test_the_experiment_page_shows_outcomes_intervals_and_a_verdict(page, demo):
    page.click("nav >> text=Experiments")
    page.click(f"text={EXPERIMENT}")
    answers = sum(int(page.inner_text(f"#variant-table tr[data-variant='{v}'] td:nth-child(5)").replace(",", ""))
                  for v in ("p50", "p70"))
    assert answers == demo["sent"]["answers"]
    learning_points = page.locator("#learning svg.interval-chart circle.point").count()
    assert page.locator("svg.interval-chart circle.point").count() - learning_points == 2   # success rate
    assert "p70" in page.inner_text("#verdicts")
    # judged by learning: the verdict sentence, and one chart per measure (drawn, or saying why not)
    assert page.inner_text("#learning-verdict").strip().endswith(".")
    assert [page.locator(f"#learning-measures figure[data-measure='{m}'] svg").count()
            for m in ("learning", "attempts_to_mastery", "retention")] == [1, 1, 1]
    shoot(page, "6-experiment")


def test_start_and_stop_an_experiment(page, demo):
    def active() -> bool:
        return db_rows(demo["url"], "SELECT active FROM experiments WHERE name = %s", EXPERIMENT)[0][0]

    page.goto(f"{demo['base']}/dashboard/experiments/{EXPERIMENT}")
    assert page.inner_text("#experiment-state") == "running" and active()
    page.click("#stop-experiment")
    page.wait_for_selector("#start-experiment")
    assert page.inner_text("#experiment-state") == "stopped" and not active()
    page.click("#start-experiment")
    page.wait_for_selector("#stop-experiment")
    assert page.inner_text("#experiment-state") == "running" and active()


def test_the_learner_view_shows_history_live_probabilities_and_the_next_items(page, demo):
    page.click("nav >> text=Learners")
    page.fill("#learner-id", demo["learner"])
    page.fill("#learner-unit", "demo.math")
    page.click("form.search button")
    assert page.locator("#recommended tbody tr").count() == 5
    assert "strategy target" in page.inner_text("#next-items")
    items = db_rows(demo["url"], "SELECT count(DISTINCT ui.item_id) FROM unit_items ui JOIN items i USING "
                                 "(tenant, item_id) WHERE i.active AND ui.unit_id LIKE 'demo.math.%'")[0][0]
    assert page.locator("#next-items svg.bar-chart rect.bar").count() == min(items, 300)   # learners.MOST_ITEMS
    assert page.locator("#history tbody tr").count() > 0
    # what the learner knows: one row per unit (demo.math and its skills), each estimate drawn with its interval
    rows = page.locator("#knowledge-table tbody tr")
    reported = db_rows(demo["url"], """
        WITH RECURSIVE below (unit_id) AS (
            SELECT 'demo.math'::text UNION SELECT c.child FROM below b JOIN unit_children c ON c.parent = b.unit_id)
        SELECT count(*) FROM below b WHERE b.unit_id = 'demo.math' OR EXISTS (
            SELECT 1 FROM unit_items ui JOIN items i USING (tenant, item_id) WHERE ui.unit_id = b.unit_id AND i.active)
        """)[0][0]
    assert rows.count() == reported > 1
    assert page.locator("#knowledge svg.interval-chart circle.point").count() == rows.count()
    assert page.locator("#knowledge-table tbody tr[data-state='mastered']").count() + \
        page.locator("#knowledge-table tbody tr[data-state='learning']").count() + \
        page.locator("#knowledge-table tbody tr[data-state='due']").count() + \
        page.locator("#knowledge-table tbody tr[data-state='not started']").count() == rows.count()
    shoot(page, "7-learner")


def test_the_item_view_shows_stats_similar_items_and_difficulty(page, demo):
    item_id, attempts = db_rows(demo["url"], "SELECT item_id, count(*) FROM interactions WHERE kind = 'attempt' AND "
                                             "item_id LIKE 'demo.math.%' GROUP BY item_id ORDER BY 2 DESC LIMIT 1")[0]
    page.click("nav >> text=Items")
    page.fill("#item-id", item_id)
    page.click("form.search button >> nth=0")
    assert page.inner_text("#item-attempts").replace(",", "") == str(attempts)
    assert page.locator("#similar tbody tr").count() == 10
    assert page.locator("#difficulty tbody tr").count() >= 1
    shoot(page, "8-item")


def test_an_operator_switches_tenant_and_sees_its_empty_catalogue(page, demo):
    page.goto(demo["base"] + "/dashboard/models")
    page.select_option("#tenant-select", "north-high")
    page.click("form.tenant button")
    assert page.locator("#unit-tree tbody tr").count() == 0
    page.select_option("#tenant-select", "default")
    page.click("form.tenant button")
    assert page.locator("#unit-tree tbody tr").count() > 0


def test_sign_out_and_be_refused(page, demo):
    page.click("#sign-out")
    assert "/dashboard/login" in page.url
    page.goto(demo["base"] + "/dashboard/experiments")
    assert "/dashboard/login" in page.url
    answer = page.request.post(f"{demo['base']}/dashboard/experiments/{EXPERIMENT}/stop",
                               form={"csrf_token": "anything"}, max_redirects=0)
    assert answer.status == 401
    assert db_rows(demo["url"], "SELECT active FROM experiments WHERE name = %s", EXPERIMENT)[0][0]

