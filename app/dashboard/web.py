"""The dashboard's gate: no page without a session, CSRF on every form, and the HTML answers.

Every dashboard view is `public` to the API's gate (app.api.auth: no Bearer key); this blueprint's
own before_request hook requires the session cookie instead. A GET without a session is sent to
the sign-in page; a POST without one is a 401. Every POST must come from this site: a foreign
Origin (or Sec-Fetch-Site: cross-site) is a 403, and so is a form without the session's CSRF
token (or, for the sign-in form, the token of its short-lived cookie).
"""
from __future__ import annotations

import time
from urllib.parse import urlsplit

import redis
from flask import current_app, g, redirect, render_template, request, url_for

from app.catalogue.records import text_problem
from app.dashboard import sessions
from app.serving.context import RequestContext, Services

SESSION_COOKIE = "adaptrec_dashboard"
LOGIN_COOKIE = "adaptrec_dashboard_login"
OPEN_ENDPOINTS = {"dashboard.login", "dashboard.login_form", "dashboard.static_file"}
CSP = ("default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
       "frame-ancestors 'none'; base-uri 'none'")


def services() -> Services:
    """The worker's services, built once by the app factory (app.serving.context.Services)."""
    return current_app.extensions["adaptrec"]


def get_conn():
    """The request's Postgres connection, borrowed from the pool once (the app factory's teardown
    returns it), as app.api.context does for the API."""
    if "db_conn" not in g:
        g.db_conn = services().pool.getconn()
    return g.db_conn


def request_context() -> RequestContext:
    """A context of the serving pipeline for a page that calls it (the learner, item and experiment
    views): the session's tenant; what it recommends is not logged (support looking is not a learner
    asking)."""
    return services().context(get_conn(), g.tenant, "dashboard", log=False)


def page(template: str, status: int = 200, **context):
    return render_template(template, session=g.get("dash_session"), **context), status


def refuse(status: int, title: str, message: str):
    return page("error.html", status, title=title, message=message)


def from_this_site() -> bool:
    """False for a request a browser marks as sent by another site."""
    if request.headers.get("Sec-Fetch-Site", "") == "cross-site":
        return False
    origin = request.headers.get("Origin")
    if origin is None or origin == "null":
        return origin is None   # an opaque origin ('null') is never this site
    return urlsplit(origin).netloc == request.host


def set_cookie(response, name: str, value: str, max_age: int | None, path: str = "/dashboard"):
    response.set_cookie(name, value, max_age=max_age, path=path, httponly=True, samesite="Strict",
                        secure=request.is_secure)


def gate():
    """before_request of the blueprint: None lets the request through."""
    g.dash_started = time.perf_counter()
    if request.endpoint in OPEN_ENDPOINTS or request.endpoint is None:
        if request.method == "POST" and not from_this_site():
            return refuse(403, "Refused", "this form was sent from another site")
        return None
    conn = get_conn()
    keyring = services().keys
    session = sessions.load(conn, request.cookies.get(SESSION_COOKIE, ""),
                            lambda key_id: keyring.live_hash(key_id, services().pool.connection))
    conn.rollback()
    if session is None or not session.allows(sessions.READ_SCOPE):
        if request.method == "GET":
            return redirect(url_for("dashboard.login_form", next=request.full_path.rstrip("?")))
        return refuse(401, "Sign in first", "your session has ended; sign in again")
    g.dash_session = session
    g.tenant = session.tenant
    problem = unstorable_input()
    if problem:
        return refuse(400, "Bad request", problem)
    if request.method == "POST":
        if not from_this_site():
            return refuse(403, "Refused", "this form was sent from another site")
        if not sessions.same_token(request.form.get("csrf_token"), session.csrf_token):
            return refuse(403, "Refused", "the form's security token is missing or stale; reload the page and retry")
    return None


def unstorable_input() -> str | None:
    """What is wrong with a path, query or form value that no database could take (a NUL or an
    unpaired surrogate), naming it; None when every value can be looked up."""
    values = list((request.view_args or {}).items()) + list(request.args.items(multi=True))
    if request.method == "POST":
        values += list(request.form.items(multi=True))
    for name, value in values:
        problem = isinstance(value, str) and text_problem(value)
        if problem:
            return f"{name}: {problem}"
    return None


def headers(response):
    """after_request of the blueprint: no caching, no framing, the CSP, and the server time."""
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Content-Security-Policy"] = CSP
    started = g.get("dash_started")
    if started is not None:
        response.headers["Server-Timing"] = f"app;dur={1000 * (time.perf_counter() - started):.1f}"
    return response


def _failure_key(cache, who: str) -> str:
    return cache.key("dashlogin", who, str(int(time.time())))


def failures_this_second(cache, who: str) -> int:
    """Failed sign-ins of `who` this second (0 when Redis does not answer: sign-in stays possible)."""
    try:
        return int(cache.client.get(_failure_key(cache, who)) or 0)
    except (redis.RedisError, OSError):
        return 0


def count_failure(cache, who: str) -> None:
    """One more failed sign-in of `who` this second (a counter that expires with the second)."""
    try:
        pipe = cache.client.pipeline(transaction=False)
        pipe.incr(_failure_key(cache, who))
        pipe.expire(_failure_key(cache, who), 2)
        pipe.execute()
    except (redis.RedisError, OSError):
        pass


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a dashboard path only (never another site)."""
    if target and target.startswith("/dashboard") and not target.startswith("//") and "\\" not in target:
        return target
    return url_for("dashboard.overview_page")


# ---- formatting for the templates (registered on the blueprint as dash_* filters) -------------
def fmt_num(value, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer() and abs(value) >= 100):
        return f"{int(value):,}"
    return f"{float(value):.{digits}f}"


def fmt_pct(value, digits: int = 1) -> str:
    return "–" if value is None else f"{100 * float(value):.{digits}f} %"


def fmt_ms(value) -> str:
    return "–" if value is None else (f"{value:.1f} ms" if value < 100 else f"{value:,.0f} ms")


def fmt_time(value) -> str:
    return "–" if value is None else value.strftime("%Y-%m-%d %H:%M UTC")


def fmt_age(hours) -> str:
    if hours is None:
        return "–"
    return f"{hours * 60:.0f} min" if hours < 1 else (f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.1f} days")


FILTERS = {"dash_num": fmt_num, "dash_pct": fmt_pct, "dash_ms": fmt_ms, "dash_time": fmt_time, "dash_age": fmt_age}
