"""HTTP API v1: one blueprint per resource, API-key auth, problem+json errors, /openapi.json."""
from __future__ import annotations

from flask import Flask, current_app, g

from app.api.auth import check_api_key
from app.api.errors import register_error_handlers
from app.api.observe import finish, request_id, start_timer
from app.api.paths import EncodedSlashes, IdConverter
from app.api.query import check_query


def get_conn():
    """The request's Postgres connection, borrowed from the pool on first use."""
    if "db_conn" not in g:
        g.db_conn = current_app.extensions["adaptrec.pool"].getconn()
    return g.db_conn


def get_cache():
    return current_app.extensions["adaptrec.cache"]


__all__ = ["get_conn", "get_cache", "request_id", "register"]


def register(app: Flask) -> None:
    from app.api import catalog, experiments, health, interactions, monitoring, openapi, recommendations

    # Ids with '/' (sent as %2F) route as one segment; see app/api/paths.py. The rule strings,
    # hence metric labels, stay /v1/items/<item_id>. A '//' is a 404, not a redirect to guess at.
    app.url_map.converters["default"] = IdConverter
    app.url_map.merge_slashes = False
    app.wsgi_app = EncodedSlashes(app.wsgi_app)
    register_error_handlers(app)
    app.before_request(start_timer)
    app.before_request(check_api_key)
    app.before_request(check_query)  # after the key: a caller without one learns that first
    app.after_request(finish)
    for module in (health, monitoring, catalog, interactions, recommendations, experiments, openapi):
        app.register_blueprint(module.bp)
