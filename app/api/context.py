"""What a route borrows for its request: the Postgres connection (returned to the pool at
teardown, see app.api.factory) and the shared Redis cache."""
from __future__ import annotations

from flask import current_app, g


def get_conn():
    """The request's Postgres connection, borrowed from the pool on first use."""
    if "db_conn" not in g:
        g.db_conn = current_app.extensions["adaptrec.pool"].getconn()
    return g.db_conn


def current_tenant() -> str:
    """The tenant the request acts for, set by the auth gate (app.api.auth) from the key."""
    return g.tenant


def get_cache():
    return current_app.extensions["adaptrec.cache"]


def get_recommendation_log():
    """This worker's buffer of answers, written to Postgres off the request path."""
    return current_app.extensions["adaptrec.recommendation_log"]
