"""HTTP API v1: one blueprint per resource, API-key auth, problem+json errors, /openapi.json."""
from __future__ import annotations

import uuid

from flask import Flask, current_app, g, request

from app.api.auth import check_api_key
from app.api.errors import register_error_handlers


def get_conn():
    """The request's Postgres connection, borrowed from the pool on first use."""
    if "db_conn" not in g:
        g.db_conn = current_app.extensions["adaptrec.pool"].getconn()
    return g.db_conn


def get_cache():
    return current_app.extensions["adaptrec.cache"]


def request_id() -> str:
    """The caller's X-Request-Id when it is sane, else a new one; echoed on every answer."""
    if "request_id" not in g:
        given = request.headers.get("X-Request-Id", "")
        g.request_id = given if 0 < len(given) <= 128 and given.isprintable() else uuid.uuid4().hex
    return g.request_id


def _echo_request_id(response):
    response.headers["X-Request-Id"] = request_id()
    return response


def register(app: Flask) -> None:
    from app.api import catalog, experiments, health, interactions, openapi, recommendations

    register_error_handlers(app)
    app.before_request(check_api_key)
    app.after_request(_echo_request_id)
    for module in (health, catalog, interactions, recommendations, experiments, openapi):
        app.register_blueprint(module.bp)
