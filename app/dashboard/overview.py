"""The overview page's figures: requests, dependencies, job runs, model freshness, data volume.
Functions of a connection and plain values (no Flask)."""
from __future__ import annotations

import time
from datetime import datetime, timedelta

from app.dashboard import charts, rollup
from app.infra import queries as q

HEADLINE = {"practice": "auc", "engagement": "precision_at_10"}   # as the nightly job's activation rule
SLOT_S = 900          # the day's chart: one bar per 15 minutes
VOLUME_DAYS = 30


def dependencies(conn, cache) -> dict:
    """Postgres and Redis: up or down, and how long a round trip took (ms)."""
    started = time.perf_counter()
    q.fetch_one(conn, "database_now")
    pg_ms = 1000 * (time.perf_counter() - started)
    started = time.perf_counter()
    redis_up = cache.ping()
    redis_ms = 1000 * (time.perf_counter() - started)
    return {"postgres": {"up": True, "ms": pg_ms}, "redis": {"up": redis_up, "ms": redis_ms if redis_up else None}}


def requests(conn, now: datetime) -> dict:
    """The API's requests in the last hour and day, and per 15 minutes over the day (charts)."""
    source, live = rollup.source_id(), rollup.current_totals()
    hour = rollup.window(conn, now, 3600, source, live)
    day = rollup.window(conn, now, 86400, source, live)
    slots = rollup.timeline(conn, now, 86400, SLOT_S, source, live[0])
    labels = [s["start"].strftime("%H:%M") for s in slots]
    volume = charts.bar_chart([(lab, s["requests"]) for lab, s in zip(labels, slots)],
                              label="API requests per 15 minutes, last 24 hours", y_label="requests", every=8)
    latency = charts.line_chart(
        [charts.Series("p95 latency (ms)", [(k, s["p95_ms"]) for k, s in enumerate(slots)], "s1", labels)],
        label="p95 latency per 15 minutes, last 24 hours", y_label="ms",
        x_ticks=[(k, labels[k]) for k in range(0, len(slots), 8)], empty="no requests in the last 24 hours")
    return {"hour": hour, "day": day, "volume_chart": volume, "latency_chart": latency}


def models(conn, tenant: str, stale_hours: float) -> dict:
    """Active models, oldest first, each flagged when older than `stale_hours`."""
    rows = q.fetch_all(conn, "dash_active_models", tenant=tenant)
    for r in rows:
        key = HEADLINE.get(r["objective"], "auc")
        r["metric"], r["value"] = key, (r["held_out"] or {}).get(key)
        r["baseline_value"] = (r["baseline"] or {}).get(key)
        r["age_h"] = r["age_s"] / 3600
        r["stale"] = r["age_h"] > stale_hours
    return {"rows": rows, "stale": sum(1 for r in rows if r["stale"]), "stale_hours": stale_hours}


def volume(conn, tenant: str) -> dict:
    """Interactions per day on the latest VOLUME_DAYS days that have any."""
    rows = q.fetch_all(conn, "dash_daily_volume", tenant=tenant, days=VOLUME_DAYS)
    chart = charts.bar_chart([(r["day"].strftime("%m-%d"), r["interactions"]) for r in rows],
                             label=f"interactions per day, the latest {VOLUME_DAYS} days with any",
                             y_label="interactions", every=5, empty="no interactions yet")
    return {"rows": rows, "chart": chart, "total": sum(r["interactions"] for r in rows)}


def jobs(conn, tenant: str) -> list[dict]:
    return q.fetch_all(conn, "dash_job_runs", tenant=tenant, limit=10)


def xapi_unmappable(conn, tenant: str, now: datetime, days: int = 7) -> dict:
    """xAPI statements accepted but kept unmapped (docs/XAPI.md): in all and in the last `days` days."""
    row = q.fetch_one(conn, "xapi_unmappable_count", tenant=tenant, since=now - timedelta(days=days))
    return {"total": row["total"], "recent": row["recent"], "days": days}
