"""Dependency outages: Postgres not answering is a fast 503; Redis not answering only degrades."""
from __future__ import annotations

import time
from dataclasses import replace

import pytest

from app.api.factory import close as close_app
from app.api.factory import create_app


@pytest.fixture
def app_without_postgres(settings):
    # Nothing listens on port 1: connections are refused at once, like a stopped Postgres.
    app = create_app(replace(settings, database_url="postgresql://postgres@127.0.0.1:1/adaptrec"))
    yield app
    app.extensions["adaptrec"].cache.close()


@pytest.fixture
def app_without_redis(settings, conn):
    app = create_app(replace(settings, redis_url="redis://127.0.0.1:1/0"))
    yield app
    close_app(app)


def test_postgres_down_is_a_fast_503_problem(app_without_postgres, auth):
    client = app_without_postgres.test_client()
    started = time.monotonic()
    r = client.get("/v1/users/u1", headers=auth)
    assert time.monotonic() - started < 1.0
    assert r.status_code == 503 and r.mimetype == "application/problem+json"
    assert r.headers["Retry-After"] == "1"
    ready = client.get("/readyz")
    assert ready.status_code == 503 and ready.json["postgres"] == "down"
    assert client.get("/healthz").status_code == 200  # the process itself is fine


def test_redis_down_degrades_readiness_but_requests_succeed(app_without_redis, auth):
    client = app_without_redis.test_client()
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json["status"] == "degraded" and ready.json["redis"] == "down"
    r = client.put("/v1/users/u1", json={"attrs": {}}, headers=auth)
    assert r.status_code == 200
