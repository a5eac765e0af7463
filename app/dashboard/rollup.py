"""Request rate, latency and errors over the last hour and day, for the dashboard's overview.

Why this shape: the request path must not slow down, and under gunicorn each worker is its own
process. Every request already increments the Prometheus request histogram (app.infra.metrics; in
multiprocess mode a write to a memory-mapped file, O(1), no I/O round trip). That histogram is
cumulative since the service started, which is all a window needs: once a minute a daemon thread
in each worker reads the totals of all the workers of its gunicorn (the same multiprocess files)
and writes one row to `request_rollup` (migration 008). Both workers write the same minute; the
first insert wins (primary key), so a 2-worker service stores one row a minute, about 2 KB.
A window's figures are then the difference between the newest totals (read live by the page,
so it is current to the second) and the last row at or before the window's start, per source.
A source is one gunicorn master on one host, so several replicas add up, and a restart starts
a new source instead of a counter going backwards. Postgres rather than Redis: Redis is a cache
that may be emptied at any time (docs/OPERATIONS.md), and eight days of rows are small.

The functions here take a connection and plain values; nothing imports Flask.
"""
from __future__ import annotations

import json
import logging
import math
import os
import random
import socket
import threading
import time
from datetime import datetime, timedelta

from prometheus_client import REGISTRY, CollectorRegistry

from app.config import multiprocess_metrics_dir
from app.dashboard.stats import histogram_quantile
from app.infra import queries as q

log = logging.getLogger("adaptrec.dashboard")

METRIC = "adaptrec_http_request_duration_seconds"
# Not the API: the dashboard itself, health checks and scrapes.
INTERNAL_PREFIXES = ("/dashboard", "/metrics", "/healthz", "/readyz")
KEEP_DAYS = 8


def source_id() -> str:
    """This serving process tree: the host and the gunicorn master (a worker's parent) when the
    workers share multiprocess metrics, else this process."""
    pid = os.getppid() if multiprocess_metrics_dir() else os.getpid()
    return f"{socket.gethostname()}:{pid}"


def _families():
    if multiprocess_metrics_dir():
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return registry.collect()
    return REGISTRY.collect()


def totals_from(families) -> tuple[dict, dict]:
    """(overall, endpoints) from the request histogram's samples: cumulative bucket counts of the
    API's requests (INTERNAL_PREFIXES left out), and per "METHOD route" [count, 5xx, seconds]."""
    bounds: list[float] = []
    buckets: dict[float, float] = {}
    overall = {"count": 0.0, "errors": 0.0, "client_errors": 0.0, "sum": 0.0}
    endpoints: dict[str, list[float]] = {}
    for family in families:
        if family.name != METRIC:
            continue
        for s in family.samples:
            endpoint = s.labels.get("endpoint", "")
            if endpoint.startswith(INTERNAL_PREFIXES):
                continue
            status = s.labels.get("status", "")
            if s.name == METRIC + "_bucket":
                le = float(s.labels["le"])
                buckets[le] = buckets.get(le, 0.0) + s.value
            elif s.name == METRIC + "_count":
                overall["count"] += s.value
                overall["errors"] += s.value if status.startswith("5") else 0.0
                overall["client_errors"] += s.value if status.startswith("4") else 0.0
                row = endpoints.setdefault(f"{s.labels.get('method', '')} {endpoint}", [0.0, 0.0, 0.0])
                row[0] += s.value
                row[1] += s.value if status.startswith("5") else 0.0
            elif s.name == METRIC + "_sum":
                overall["sum"] += s.value
                endpoints.setdefault(f"{s.labels.get('method', '')} {endpoint}", [0.0, 0.0, 0.0])[2] += s.value
    bounds = sorted(buckets)
    overall["le"] = [b for b in bounds if math.isfinite(b)]
    overall["buckets"] = [buckets[b] for b in bounds]      # the last one is +Inf: the count
    return overall, endpoints


def current_totals() -> tuple[dict, dict]:
    return totals_from(_families())


def snapshot(conn, source: str, at: datetime) -> bool:
    """Store this source's totals as the minute of `at`; False when that minute was already stored."""
    overall, endpoints = current_totals()
    return q.execute(conn, "insert_request_rollup", source=source, taken_at=at, overall=json.dumps(overall),
                     endpoints=json.dumps(endpoints)) > 0


def prune(conn, now: datetime, keep_days: int = KEEP_DAYS) -> int:
    return q.execute(conn, "prune_request_rollup", before=now - timedelta(days=keep_days))


def _minus(a: dict, b: dict) -> dict:
    """Totals a - b. Buckets are matched by bound."""
    old = dict(zip([*b["le"], math.inf], b["buckets"]))
    return {"count": a["count"] - b["count"], "errors": a["errors"] - b["errors"],
            "client_errors": a["client_errors"] - b["client_errors"], "sum": a["sum"] - b["sum"], "le": a["le"],
            "buckets": [v - old.get(le, 0.0) for le, v in zip([*a["le"], math.inf], a["buckets"])]}


def _add(total: dict | None, part: dict) -> dict:
    if total is None:
        return dict(part)
    mine = dict(zip([*total["le"], math.inf], total["buckets"]))
    for le, v in zip([*part["le"], math.inf], part["buckets"]):
        mine[le] = mine.get(le, 0.0) + v
    bounds = sorted(mine)
    return {"count": total["count"] + part["count"], "errors": total["errors"] + part["errors"],
            "client_errors": total["client_errors"] + part["client_errors"], "sum": total["sum"] + part["sum"],
            "le": [b for b in bounds if math.isfinite(b)], "buckets": [mine[b] for b in bounds]}


def summarise(totals: dict | None, seconds: float) -> dict:
    """Counts, rate per second, error shares and latency percentiles (ms) of a window's totals."""
    if totals is None or totals["count"] <= 0:
        return {"requests": 0, "per_s": 0.0, "errors": 0, "error_rate": None, "client_error_rate": None,
                "p50_ms": None, "p95_ms": None, "p99_ms": None, "mean_ms": None}
    bounds = [*totals["le"], math.inf]

    def pct(p):
        v = histogram_quantile(p, bounds, totals["buckets"])
        return None if v is None else 1000 * v

    n = totals["count"]
    return {"requests": int(round(n)), "per_s": n / seconds if seconds > 0 else 0.0,
            "errors": int(round(totals["errors"])),
            "error_rate": totals["errors"] / n, "client_error_rate": totals["client_errors"] / n,
            "p50_ms": pct(0.5), "p95_ms": pct(0.95), "p99_ms": pct(0.99), "mean_ms": 1000 * totals["sum"] / n}


def window(conn, now: datetime, seconds: float, source: str | None = None, live: tuple[dict, dict] | None = None
           ) -> dict:
    """The last `seconds` before `now`: summarise() of every source's increase, the top endpoints,
    and `since`: when the stored history starts, if later than the window's start."""
    start = now - timedelta(seconds=seconds)
    base = {r["source"]: r for r in q.fetch_all(conn, "request_rollup_at", at=start, since=start, current=source)}
    last = {r["source"]: r for r in q.fetch_all(conn, "request_rollup_at", at=now, since=start, current=source)}
    if source is not None and live is not None:
        last[source] = {"source": source, "taken_at": now, "overall": live[0], "endpoints": live[1]}
    total, per_endpoint, earliest = None, {}, None
    for src, row in last.items():
        b = base.get(src)
        if b is None:
            # A source counts from its first snapshot (written within a minute of its start), never
            # from zero: a process may have served long before anyone snapshotted it.
            b = q.fetch_one(conn, "request_rollup_first", source=src) or row
            began = b["taken_at"]
            earliest = began if earliest is None else min(earliest, began)
        total = _add(total, _minus(row["overall"], b["overall"]))
        old = b["endpoints"]
        for name, (count, errors, secs) in row["endpoints"].items():
            was = old.get(name, [0, 0, 0])
            acc = per_endpoint.setdefault(name, [0.0, 0.0, 0.0])
            acc[0] += count - was[0]
            acc[1] += errors - was[1]
            acc[2] += secs - was[2]
    covered = seconds if earliest is None or earliest <= start else max((now - earliest).total_seconds(), 1.0)
    top = sorted(((n, v) for n, v in per_endpoint.items() if v[0] > 0), key=lambda kv: -kv[1][0])[:8]
    return {**summarise(total, covered), "since": earliest if earliest is not None and earliest > start else None,
            "endpoints": [{"endpoint": n, "requests": int(round(c)), "errors": int(round(e)),
                           "mean_ms": 1000 * s / c} for n, (c, e, s) in top]}


def timeline(conn, now: datetime, seconds: float, slot_s: int, source: str | None = None,
             live: dict | None = None) -> list[dict]:
    """Per slot of `slot_s` seconds over the last `seconds`: {start, requests, errors, p95_ms}."""
    start = now - timedelta(seconds=seconds)
    since = start - timedelta(seconds=slot_s)
    # each source's last snapshot before the chart starts is where its first slot counts from
    rows = q.fetch_all(conn, "request_rollup_at", at=since, since=since, current=source) + \
        q.fetch_all(conn, "request_rollup_slots", since=since, slot_s=slot_s)
    slot_of = lambda t: math.floor(t.timestamp() / slot_s) * slot_s  # noqa: E731
    by_source: dict[str, list[tuple[int, dict]]] = {}
    for r in rows:
        by_source.setdefault(r["source"], []).append((slot_of(r["taken_at"]), r["overall"]))
    if source is not None and live is not None:
        by_source.setdefault(source, []).append((slot_of(now), live))
    first_slot = slot_of(start) + slot_s
    sums: dict[int, dict] = {}
    for points in by_source.values():
        points.sort(key=lambda p: p[0])
        # the first point is where the source's counting starts: its last snapshot before the chart,
        # or its first snapshot ever (as in window())
        previous, points = points[0][1], points[1:]
        for slot, totals in points:
            if slot >= first_slot:
                sums[slot] = _add(sums.get(slot), _minus(totals, previous))
            previous = totals
    out = []
    slot = first_slot
    while slot <= slot_of(now):
        s = summarise(sums.get(slot), slot_s)
        out.append({"start": datetime.fromtimestamp(slot, tz=now.tzinfo), "requests": s["requests"],
                    "errors": s["errors"], "p95_ms": s["p95_ms"]})
        slot += slot_s
    return out


class RollupThread(threading.Thread):
    """Writes this worker's snapshot each minute (a few milliseconds of a background thread; a
    failure is logged and the next minute tries again). Daemon: it dies with the worker."""

    def __init__(self, database_url: str, interval_s: int = 60):
        super().__init__(name="adaptrec-rollup", daemon=True)
        self.database_url, self.interval_s = database_url, interval_s
        self.stopped = threading.Event()

    def run(self) -> None:
        from app.infra.db import connect

        pruned = 0.0
        while not self.stopped.is_set():
            # just after the next boundary, with a little jitter so workers do not collide
            jitter = random.uniform(0.05, min(5.0, self.interval_s / 12))
            delay = self.interval_s - time.time() % self.interval_s + jitter
            if self.stopped.wait(delay):
                return
            try:
                conn = connect(self.database_url, connect_timeout=3, application_name="adaptrec-rollup")
                try:
                    with conn:
                        now = q.fetch_one(conn, "database_now")["now"]
                        snapshot(conn, source_id(), now)
                        if time.monotonic() - pruned > 3600:
                            prune(conn, now)
                            pruned = time.monotonic()
                finally:
                    conn.close()
            except Exception as exc:  # never let the thread die: the next minute tries again
                log.warning("request rollup not stored: %s", str(exc).strip().splitlines()[0] if str(exc) else exc)


def start(database_url: str, interval_s: int) -> RollupThread | None:
    """Start the snapshot thread of this worker, only under gunicorn's multiprocess metrics (the
    service as deployed); a single process (tests, a bench) snapshots when asked."""
    if interval_s <= 0 or not multiprocess_metrics_dir():
        return None
    thread = RollupThread(database_url, interval_s)
    thread.start()
    return thread
