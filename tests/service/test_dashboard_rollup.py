"""The overview's request figures: per-minute snapshots of the request histogram, a window as the
difference of two, the thread that writes them, and nothing added to the API's request path."""
from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta

import pytest

from app.dashboard import rollup
from tests.conftest import TEST_API_KEY


@pytest.fixture
def empty_rollup(conn):
    """No snapshot before the test's own (the `conn` fixture empties request_rollup after every test)."""
    with conn, conn.cursor() as cur:
        cur.execute("DELETE FROM request_rollup")


def test_the_last_hour_counts_the_requests_since_the_snapshot_before_it(client, auth, conn, empty_rollup):
    now = datetime.now(UTC)
    with conn:
        assert rollup.snapshot(conn, rollup.source_id(), now - timedelta(hours=2))
        assert not rollup.snapshot(conn, rollup.source_id(), now - timedelta(hours=2))   # one row a minute
    for _ in range(4):
        assert client.get("/v1/items/no-such-item", headers=auth).status_code == 404
    assert client.get("/healthz").status_code == 200            # not the API: left out
    window = rollup.window(conn, now + timedelta(seconds=1), 3600, rollup.source_id(), rollup.current_totals())
    assert window["requests"] == 4 and window["client_error_rate"] == 1.0 and window["errors"] == 0
    assert window["endpoints"][0]["endpoint"] == "GET /v1/items/<item_id>"
    assert window["since"] is None                                # the history covers the whole hour
    slots = rollup.timeline(conn, now + timedelta(seconds=1), 86400, 900, rollup.source_id(),
                            rollup.current_totals()[0])
    assert len(slots) == 96 and sum(s["requests"] for s in slots) == 4
    with conn:      # the snapshot before the day counts too: the day's slots start from it
        conn.cursor().execute("UPDATE request_rollup SET taken_at = taken_at - interval '2 days'")
    slots = rollup.timeline(conn, now + timedelta(seconds=1), 86400, 900, rollup.source_id(),
                            rollup.current_totals()[0])
    assert sum(s["requests"] for s in slots) == 4


def test_the_overview_shows_the_request_figures_to_an_operator(client, auth, conn, empty_rollup):
    with conn:
        rollup.snapshot(conn, rollup.source_id(), datetime.now(UTC) - timedelta(hours=2))
    for _ in range(3):
        client.get("/v1/items/no-such-item", headers=auth)
    form = client.get("/dashboard/login")
    token = re.search(r'name="login_token" value="([^"]+)"', form.text).group(1)
    client.post("/dashboard/login", data={"login_token": token, "api_key": TEST_API_KEY})
    page = client.get("/dashboard").text
    row = re.search(r"<th>last hour.*?</th>\s*<td>([^<]+)</td>", page, re.S)
    assert row and row.group(1).strip() == "3"
    assert '<svg class="chart bar-chart"' in page and "p95 latency per 15 minutes" in page


def test_the_rollup_thread_writes_a_snapshot_each_interval(db_url, conn, empty_rollup):
    thread = rollup.RollupThread(db_url, interval_s=1)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        rows = 0
        while time.monotonic() < deadline and rows < 1:
            time.sleep(0.3)
            with conn.cursor() as cur:
                cur.execute("SELECT count(*) FROM request_rollup WHERE source = %s", (rollup.source_id(),))
                rows = cur.fetchone()[0]
            conn.rollback()
        assert rows >= 1     # one row per minute: a second snapshot within the minute is a no-op
    finally:
        thread.stopped.set()
        thread.join(timeout=5)


def test_only_gunicorn_workers_start_the_thread(monkeypatch, db_url):
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    assert rollup.start(db_url, 60) is None
    assert rollup.start(db_url, 0) is None


def test_the_dashboard_adds_no_hook_to_the_api_request_path(app):
    """Per request the API still only increments its histogram: the dashboard's gate runs for its
    own blueprint, never for /v1."""
    assert [f.__name__ for f in app.before_request_funcs[None]] == ["start_timer", "check_api_key", "check_query"]
    assert [f.__name__ for f in app.after_request_funcs[None]] == ["finish"]
    assert [f.__name__ for f in app.before_request_funcs["dashboard"]] == ["gate"]
