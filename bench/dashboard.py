"""Dashboard page times: `python -m bench.dashboard --json OUT [--requests N] [--traffic-unit U]`.

Measures every /dashboard page on the database the environment names (ADAPTREC_DATABASE_URL,
ADAPTREC_REDIS_URL, ADAPTREC_REDIS_PREFIX), as `adaptrec serve` would serve it:

1. The service: gunicorn with 2 workers on a free port (harness.service), a bootstrap key of
   this bench's own.
2. Optionally (--traffic-unit U): an experiment with two variants and --traffic-learners learners
   asking for items of U and attempting them, then the calibration job, so the experiment and
   calibration pages have something to show on a data set without logged recommendations (an
   ASSISTments import). This writes to the database: use a scratch one.
3. Sign in as a browser does; pick the ids the pages need (the learner with the most logged
   answers, else the most active one; the item most attempted; the root unit; the calibrated
   model with the most attempts; the experiment with the most answers).
4. Each page: 3 unmeasured requests, then --requests sequential ones (one at a time: the time a
   person waits). Reported per page: the server's own time (the Server-Timing header: from the
   dashboard's gate to the response, rendering included) and the client's wall time (plus the
   HTTP round trip on loopback), p50 / p95 / max, in ms.

Target (issue 14): every page under 300 ms. Data sizes and the machine are in the report.
"""
from __future__ import annotations

import argparse
import http.cookiejar
import json
import re
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import psycopg2

from app.config import Settings
from harness.dashboard_data import calibrate, traffic, wait_until_logged
from harness.measure import loadavg, machine, percentile
from harness.report import write_json
from harness.service import running_service

KEY = "bench-dashboard-operator-key-0123456789"


def sign_in(base: str) -> urllib.request.OpenerDirector:
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    form = opener.open(base + "/dashboard/login", timeout=30).read().decode()
    token = re.search(r'name="login_token" value="([^"]+)"', form).group(1)
    opener.open(base + "/dashboard/login", urllib.parse.urlencode({"login_token": token, "api_key": KEY}).encode(),
                timeout=30).read()
    return opener


def one(conn, sql: str):
    with conn.cursor() as cur:
        cur.execute(sql)
        row = cur.fetchone()
    conn.rollback()
    return row


def sample(database_url: str) -> tuple[dict, dict]:
    """Ids for the pages, and the data's size."""
    conn = psycopg2.connect(database_url)
    try:
        learner = one(conn, "SELECT user_id FROM recommendation_log WHERE tenant = 'default' GROUP BY user_id "
                            "ORDER BY count(*) DESC, user_id LIMIT 1") or \
            one(conn, "SELECT user_id FROM interactions WHERE tenant = 'default' GROUP BY user_id "
                      "ORDER BY count(*) DESC LIMIT 1")
        item = one(conn, "SELECT item_id FROM interactions WHERE tenant = 'default' AND kind = 'attempt' "
                         "GROUP BY item_id ORDER BY count(*) DESC LIMIT 1")
        unit = one(conn, "SELECT unit_id FROM units u WHERE tenant = 'default' AND NOT EXISTS (SELECT 1 FROM "
                         "unit_children c WHERE c.tenant = u.tenant AND c.child = u.unit_id) ORDER BY unit_id LIMIT 1")
        model = one(conn, "SELECT model_id FROM calibration_reports WHERE tenant = 'default' GROUP BY model_id "
                          "ORDER BY sum(n) DESC LIMIT 1")
        experiment = one(conn, "SELECT experiment FROM recommendation_log WHERE tenant = 'default' AND experiment "
                               "IS NOT NULL GROUP BY experiment ORDER BY count(*) DESC LIMIT 1") or \
            one(conn, "SELECT name FROM experiments WHERE tenant = 'default' ORDER BY name LIMIT 1")
        tables = {"interactions": "interactions", "users": "users", "items": "items", "units": "units",
                  "models": "models", "active_models": "models WHERE status = 'active'",
                  "logged_answers": "recommendation_log", "calibration_reports": "calibration_reports"}
        size = {name: one(conn, f"SELECT count(*) FROM {t}")[0] for name, t in tables.items()}
    finally:
        conn.close()
    quote = lambda v: urllib.parse.quote(v, safe="")  # noqa: E731
    pages = {"overview": "/dashboard", "models": "/dashboard/models",
             "models_search": "/dashboard/models?q=a",
             "unit": f"/dashboard/models/{quote(unit[0])}" if unit else None,
             "calibration": "/dashboard/calibration",
             "calibration_model": f"/dashboard/calibration/{model[0]}" if model else None,
             "experiments": "/dashboard/experiments",
             "experiment": f"/dashboard/experiments/{quote(experiment[0])}" if experiment else None,
             "learner": f"/dashboard/learners?user_id={quote(learner[0])}" if learner else None,
             "item": f"/dashboard/items?item_id={quote(item[0])}" if item else None,
             "item_search": "/dashboard/items?q=1"}
    return {k: v for k, v in pages.items() if v}, size


HISTORY_SOURCES = ("bench-history:1", "bench-history:2")


def seed_rollup_history(database_url: str, days: int) -> int:
    """`days` of request-rollup rows, one a minute, for two made-up sources (a restart halfway),
    with counts rising as a 2-worker service's would at ~50 requests/s over 25 endpoints: what the
    overview reads after a week in production. Removed again by drop_rollup_history()."""
    from datetime import timedelta

    bounds = [0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0]
    shares = [0.05, 0.2, 0.45, 0.65, 0.8, 0.9, 0.96, 0.99, 0.995, 0.998, 0.999, 1, 1, 1, 1]
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    minutes = days * 1440
    rows = []
    for k in range(minutes):
        source = HISTORY_SOURCES[0] if k < minutes // 2 else HISTORY_SOURCES[1]
        n = 3000.0 * ((k if k < minutes // 2 else k - minutes // 2) + 1)
        overall = {"le": bounds, "buckets": [round(n * f) for f in shares], "count": n, "errors": n * 0.001,
                   "client_errors": n * 0.01, "sum": n * 0.004}
        endpoints = {f"GET /v1/endpoint{e}": [n / 25, n / 25000, n / 25 * 0.004] for e in range(25)}
        rows.append((source, now - timedelta(minutes=minutes - k), json.dumps(overall), json.dumps(endpoints)))
    conn = psycopg2.connect(database_url)
    try:
        with conn, conn.cursor() as cur:
            cur.executemany("INSERT INTO request_rollup (source, taken_at, overall, endpoints) "
                            "VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING", rows)
    finally:
        conn.close()
    return len(rows)


def drop_rollup_history(database_url: str) -> None:
    conn = psycopg2.connect(database_url)
    try:
        with conn, conn.cursor() as cur:
            cur.execute("DELETE FROM request_rollup WHERE source = ANY(%s)", (list(HISTORY_SOURCES),))
    finally:
        conn.close()


def measure(opener, base: str, path: str, n: int) -> dict:
    wall, server = [], []
    for k in range(n + 3):
        started = time.perf_counter()
        with opener.open(base + path, timeout=60) as answer:
            answer.read()
            if not answer.geturl().endswith(path.split("?")[0]) and "?" not in path:
                raise RuntimeError(f"{path}: sent to {answer.geturl()} (not signed in?)")
            timing = answer.headers.get("Server-Timing", "")
        elapsed = 1000 * (time.perf_counter() - started)
        if k >= 3:
            wall.append(elapsed)
            match = re.search(r"dur=([0-9.]+)", timing)
            if match:
                server.append(float(match.group(1)))

    def r(v):
        return None if v is None else round(v, 1)

    return {"path": path, "n": n, "server_p50_ms": r(percentile(server, 50)),
            "server_p95_ms": r(percentile(server, 95)), "server_max_ms": r(max(server) if server else None),
            "wall_p50_ms": r(percentile(wall, 50)),
            "wall_p95_ms": r(percentile(wall, 95)), "wall_max_ms": r(max(wall))}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.dashboard", description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write the report here")
    parser.add_argument("--requests", type=int, default=30, help="measured requests per page (default 30)")
    parser.add_argument("--traffic-unit", help="first send experiment traffic for this unit and calibrate")
    parser.add_argument("--traffic-learners", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rollup-history-days", type=int, default=8,
                        help="first store this many days of made-up request-rollup rows (what a week in "
                             "production leaves for the overview to read; removed at the end; 0: none)")
    return parser.parse_args(argv)


def send_traffic(args, settings, base_url: str, reports: Path) -> None:
    """--traffic-unit: experiment traffic of --traffic-learners learners, logged, then calibrated."""
    conn = psycopg2.connect(settings.database_url)
    learners = [r[0] for r in _all(conn, "SELECT user_id FROM interactions WHERE tenant = 'default' "
                                         "GROUP BY user_id ORDER BY count(*) DESC LIMIT %s", args.traffic_learners)]
    conn.close()
    sent = traffic(base_url, KEY, learners, args.traffic_unit, rounds=2)
    wait_until_logged(settings.database_url, sent["answers"])
    print(f"bench.dashboard: traffic {sent}; calibration groups "
          f"{calibrate(settings.database_url, reports)}", file=sys.stderr)


def measure_pages(args, database_url: str, base_url: str) -> tuple[dict, dict, int]:
    """Every page's times, with --rollup-history-days of made-up rollup rows stored meanwhile;
    returns (figures by page, the data's size, the rollup rows stored)."""
    pages, size = sample(database_url)
    history = seed_rollup_history(database_url, args.rollup_history_days) if args.rollup_history_days else 0
    try:
        opener = sign_in(base_url)
        results = {}
        for name, path in pages.items():
            results[name] = measure(opener, base_url, path, args.requests)
            print(f"bench.dashboard: {name}: {json.dumps(results[name])}", file=sys.stderr)
    finally:
        if history:
            drop_rollup_history(database_url)
    return results, size, history


def report(args, results: dict, size: dict, history: int) -> None:
    """The page figures with the data's size and the machine; printed, and in --json's file."""
    result = {"bench": "dashboard", "date": datetime.now(UTC).isoformat(timespec="seconds"), "machine": machine(),
              "loadavg_end": loadavg(), "workers": args.workers, "data": size, "rollup_history_rows": history,
              "pages": results,
              "slowest_server_p95_ms": max(r["server_p95_ms"] or 0 for r in results.values()),
              "target_ms": 300}
    print(write_json(result, args.json, default=str))


def main(argv=None) -> int:
    args = parse_args(argv)
    settings = Settings.from_env()
    if settings.embedded:
        print("bench.dashboard: set ADAPTREC_DATABASE_URL and ADAPTREC_REDIS_URL to the database to measure",
              file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp, \
            running_service(settings.database_url, settings.redis_url, KEY, Path(tmp) / "service.log",
                            redis_prefix=settings.redis_prefix, workers=args.workers) as service:
        if args.traffic_unit:
            send_traffic(args, settings, service.base_url, Path(tmp) / "reports")
        results, size, history = measure_pages(args, settings.database_url, service.base_url)
    report(args, results, size, history)
    return 0


def _all(conn, sql: str, *params) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


if __name__ == "__main__":
    sys.exit(main())
