"""HTTP API v1: one blueprint per resource, API-key auth, problem+json errors, /openapi.json."""
from __future__ import annotations

from flask import Flask, current_app, g

from app.api.auth import check_api_key
from app.api.errors import register_error_handlers


def get_conn():
    """The request's Postgres connection, borrowed from the pool on first use."""
    if "db_conn" not in g:
        g.db_conn = current_app.extensions["adaptrec.pool"].getconn()
    return g.db_conn


def get_cache():
    return current_app.extensions["adaptrec.cache"]


def register(app: Flask) -> None:
    from app.api import catalog, experiments, health, interactions, openapi, recommendations

    register_error_handlers(app)
    app.before_request(check_api_key)
    for module in (health, catalog, interactions, recommendations, experiments, openapi):
        app.register_blueprint(module.bp)
