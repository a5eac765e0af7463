"""What a route borrows for its request: the worker's services (built once by app.api.factory),
the Postgres connection (returned to the pool at teardown) and the request's context for the
serving pipeline (app.serving.context.RequestContext)."""
from __future__ import annotations

from flask import current_app, g

from app.api.observe import request_id
from app.serving.context import RequestContext, Services


def services() -> Services:
    return current_app.extensions["adaptrec"]


def get_conn():
    """The request's Postgres connection, borrowed from the pool on first use."""
    if "db_conn" not in g:
        g.db_conn = services().pool.getconn()
    return g.db_conn


def current_tenant() -> str:
    """The tenant the request acts for, set by the auth gate (app.api.auth) from the key."""
    return g.tenant


def get_cache():
    return services().cache


def request_context(tenant: str | None = None) -> RequestContext:
    """The serving pipeline's context of this request: its tenant (default: the key's), connection
    and id; answers are logged."""
    return services().context(get_conn(), tenant or current_tenant(), request_id())
