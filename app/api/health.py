"""Liveness and readiness probes (open: no API key)."""
from __future__ import annotations

import psycopg2
from flask import Blueprint

from app.api.context import get_cache, services
from app.api.schemas import Health, Ready
from app.api.spec import documented
from app.infra import migrations
from app.infra.db import DatabaseUnavailable

bp = Blueprint("health", __name__)


@bp.get("/healthz")
@documented("get", "/healthz", "The process is up", tag="health", public=True, responses={200: Health})
def healthz():
    return {"status": "ok"}


@bp.get("/readyz")
@documented("get", "/readyz", "Postgres and Redis answer (503 when Postgres does not)", tag="health",
            public=True, responses={200: Ready, 503: Ready})
def readyz():
    pool = services().pool
    pending = None
    try:
        with pool.connection() as conn:
            pending = sum(1 for m in migrations.status(conn) if m["applied_at"] is None)
        postgres = "ok"
    except (DatabaseUnavailable, psycopg2.Error):
        postgres = "down"
    redis_ok = get_cache().ping()
    body = {
        "status": "unavailable" if postgres == "down" else ("ready" if redis_ok else "degraded"),
        "postgres": postgres,
        "redis": "ok" if redis_ok else "down",
        "migrations_pending": pending,
    }
    # Redis down degrades but does not stop the service: Postgres answers everything.
    return body, (503 if postgres == "down" else 200)
