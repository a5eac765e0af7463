"""The dashboard's routes: parse, call a page function with conn and tenant, render. Read-only
except signing in and out, switching tenant, and starting or stopping an experiment (admin)."""
from __future__ import annotations

import secrets
from datetime import UTC, datetime

from flask import Blueprint, Flask, current_app, g, redirect, request, send_from_directory, url_for

from app.access import keys, tenants
from app.catalogue.records import identifier
from app.dashboard import calibration, experiments, learners, models, overview, rollup, sessions, web
from app.errors import InputError, NotFound

bp = Blueprint("dashboard", __name__, template_folder="templates", static_folder=None)
STATIC = __file__.rsplit("/", 1)[0] + "/static"
LOGIN_FAILURES_PER_S = 5
bp.before_request(web.gate)
bp.after_request(web.headers)
for _name, _filter in web.FILTERS.items():
    bp.add_app_template_filter(_filter, _name)


def public(view):
    """The API's key gate lets the view through (app.api.auth); web.gate guards it instead."""
    view.public = True
    return view


def init_app(app: Flask) -> None:
    """Register the dashboard and, under gunicorn, start this worker's request-rollup thread."""
    app.register_blueprint(bp)
    settings = app.config["ADAPTREC_SETTINGS"]
    app.extensions["adaptrec.rollup"] = rollup.start(settings.database_url, settings.metrics_rollup_s)


def _settings():
    return current_app.config["ADAPTREC_SETTINGS"]


@bp.get("/dashboard/static/<name>")
@public
def static_file(name: str):
    return send_from_directory(STATIC, name, max_age=300)


@bp.get("/dashboard/login")
@public
def login_form():
    token = secrets.token_urlsafe(24)
    html, status = web.page("login.html", login_token=token, next=request.args.get("next", ""))
    response = current_app.make_response((html, status))
    web.set_cookie(response, web.LOGIN_COOKIE, token, max_age=900)
    return response


@bp.post("/dashboard/login")
@public
def login():
    given, expected = request.form.get("login_token", ""), request.cookies.get(web.LOGIN_COOKIE, "")
    if not expected or not sessions.same_token(given, expected):
        return web.refuse(403, "Refused", "the sign-in form is stale or was sent from another site; reload it")
    key = request.form.get("api_key", "").strip()
    if not key:
        return web.refuse(400, "Sign-in failed", "enter an API key")
    # Guessing keys (a bootstrap key may be short text): after LOGIN_FAILURES_PER_S failed tries in
    # a second from one address, further tries in that second are not even checked.
    cache, who = web.services().cache, f"dashboard-login:{request.remote_addr}"
    if web.failures_this_second(cache, who) >= LOGIN_FAILURES_PER_S:
        return web.refuse(429, "Too many sign-in attempts", "wait a second and try again")
    conn = web.get_conn()
    principal = web.services().keys.authenticate(key, web.services().pool.connection)
    if principal is None:
        web.count_failure(cache, who)
        return web.refuse(401, "Sign-in failed", "that API key is not valid (unknown or revoked)")
    if not principal.allows(sessions.READ_SCOPE):
        return web.refuse(403, "Sign-in refused",
                          f"this key has scope {', '.join(sorted(principal.scopes))}; the dashboard needs "
                          f"'{sessions.READ_SCOPE}' or 'admin' (adaptrec keys add --scopes dashboard ...)")
    with conn:
        token = sessions.create(conn, principal, keys.hash_key(key), principal.tenant or tenants.DEFAULT)
    response = redirect(web.safe_next(request.form.get("next")))
    web.set_cookie(response, web.SESSION_COOKIE, token, max_age=sessions.SESSION_HOURS * 3600)
    response.delete_cookie(web.LOGIN_COOKIE, path="/dashboard")
    return response


@bp.post("/dashboard/logout")
@public
def logout():
    conn = web.get_conn()
    with conn:
        sessions.end(conn, request.cookies.get(web.SESSION_COOKIE, ""))
    response = redirect(url_for("dashboard.login_form"))
    response.delete_cookie(web.SESSION_COOKIE, path="/dashboard")
    return response


@bp.post("/dashboard/tenant")
@public
def switch_tenant():
    wanted = request.form.get("tenant", "")
    conn = web.get_conn()
    # A tenant key's session is refused before the name is looked up: the same answer for a
    # tenant that exists and one that does not, so the refusal tells it no other tenant's name.
    try:
        if g.dash_session.operator and wanted not in tenants.names(conn):
            raise NotFound(f"no tenant {wanted!r}; choose one from the list")
        with conn:
            sessions.switch_tenant(conn, g.dash_session, wanted)
    except PermissionError as exc:
        return web.refuse(403, "Refused", str(exc))
    return redirect(web.safe_next(request.form.get("next")))


@bp.get("/dashboard")
@public
def overview_page():
    conn = web.get_conn()
    now = datetime.now(UTC)
    session = g.dash_session
    data = {"health": overview.dependencies(conn, web.services().cache),
            "requests": overview.requests(conn, now) if session.operator else None,
            "models": overview.models(conn, g.tenant, _settings().dashboard_stale_hours),
            "volume": overview.volume(conn, g.tenant), "jobs": overview.jobs(conn, g.tenant),
            "xapi": overview.xapi_unmappable(conn, g.tenant, now)}
    conn.rollback()
    return web.page("overview.html", **data, tenants=_tenant_choices(conn))


@bp.get("/dashboard/models")
@public
def models_page():
    search = request.args.get("q", "")[:100]
    conn = web.get_conn()
    return web.page("models.html", **models.index(conn, g.tenant, search), tenants=_tenant_choices(conn))


@bp.get("/dashboard/models/<unit_id>")
@public
def unit_page(unit_id: str):
    identifier("unit_id", unit_id)
    conn = web.get_conn()
    return web.page("unit.html", **models.unit(conn, g.tenant, unit_id), tenants=_tenant_choices(conn))


@bp.get("/dashboard/calibration")
@public
def calibration_page():
    conn = web.get_conn()
    return web.page("calibration.html", **calibration.index(conn, g.tenant), tenants=_tenant_choices(conn))


@bp.get("/dashboard/calibration/<int:model_id>")
@public
def calibration_model_page(model_id: int):
    conn = web.get_conn()
    return web.page("calibration_model.html", **calibration.model(conn, g.tenant, model_id),
                    tenants=_tenant_choices(conn))


@bp.get("/dashboard/experiments")
@public
def experiments_page():
    conn = web.get_conn()
    return web.page("experiments.html", **experiments.index(conn, g.tenant), tenants=_tenant_choices(conn))


@bp.get("/dashboard/experiments/<name>")
@public
def experiment_page(name: str):
    identifier("name", name)
    conn = web.get_conn()
    return web.page("experiment.html", **experiments.detail(web.request_context(), name),
                    tenants=_tenant_choices(conn))


@bp.post("/dashboard/experiments/<name>/<action>")
@public
def experiment_action(name: str, action: str):
    if action not in ("start", "stop"):
        raise NotFound(f"no action {action!r}; an experiment can be started or stopped")
    if not g.dash_session.allows("admin"):
        return web.refuse(403, "Refused", "starting or stopping an experiment needs a key with the 'admin' scope")
    identifier("name", name)
    conn = web.get_conn()
    with conn:
        (experiments.start if action == "start" else experiments.stop)(conn, g.tenant, name)
    experiments.forget_results(web.services().cache, g.tenant, name)
    return redirect(url_for("dashboard.experiment_page", name=name))


@bp.get("/dashboard/learners")
@public
def learner_page():
    user_id = request.args.get("user_id", "").strip()
    unit_id = request.args.get("unit_id", "").strip() or None
    if user_id:
        identifier("user_id", user_id)
    if unit_id:
        identifier("unit_id", unit_id)
    conn = web.get_conn()
    data = None
    if user_id:
        data = learners.learner(web.request_context(), user_id, unit_id)
        conn.rollback()
    return web.page("learner.html", data=data, user_id=user_id, suggestions=learners.suggestions(conn, g.tenant),
                    tenants=_tenant_choices(conn))


@bp.get("/dashboard/items")
@public
def item_page():
    item_id = request.args.get("item_id", "").strip()
    text = request.args.get("q", "").strip()[:100]
    if item_id:
        identifier("item_id", item_id)
    conn = web.get_conn()
    data = learners.item(web.request_context(), item_id) if item_id else None
    return web.page("item.html", data=data, item_id=item_id, q=text, found=learners.find_items(conn, g.tenant, text),
                    tenants=_tenant_choices(conn))


def _tenant_choices(conn) -> list[str]:
    """The tenants an operator's session may switch to (a tenant key's session sees only its own)."""
    return tenants.names(conn) if g.dash_session.operator else [g.tenant]


@bp.errorhandler(NotFound)
def _not_found(exc):
    return web.refuse(404, "Not found", str(exc))


@bp.errorhandler(InputError)
def _bad_input(exc):
    return web.refuse(400, "Bad request", str(exc))
