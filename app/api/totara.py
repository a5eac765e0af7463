"""Totara's machine-learning service endpoints, as Totara's PHP client calls them (ml_service\\api):
GET /user-items, /similar-items and /health-check, signed with X-Totara-Time and X-Totara-Ml-Key
(app.totara.protocol), answered from the same engine as /v1 through app.totara.answers.

Totara treats any status but 200 as a failure and then serves its own cache, so every refusal is
a 4xx/5xx with Totara's failure body {"success": false, "message": ...}; a valid request for a
user or item type with nothing to recommend is a 200 with an empty list, except a tenant none of
whose items has a Totara component (a 409: every answer would be empty; app.totara.answers). Totara's
tenant T is the adaptrec tenant named T (`adaptrec import --format totara` creates them).
"""
from __future__ import annotations

import logging
import time
from importlib.metadata import PackageNotFoundError, version

import psycopg2
from flask import Blueprint, current_app, g, jsonify, request
from werkzeug.exceptions import HTTPException

from app.api.context import get_conn, request_context, services
from app.api.schemas import TotaraFailure, TotaraHealth, TotaraItems
from app.api.spec import documented
from app.errors import InputError, NotFound
from app.infra import queries as q
from app.infra.db import DatabaseUnavailable
from app.totara import answers
from app.totara import protocol as totara

log = logging.getLogger("adaptrec.totara")
bp = Blueprint("totara", __name__)
N_ITEMS_MAX = 1000

_SIGNED = ("Signed as Totara signs: `X-Totara-Time` (unix seconds) and `X-Totara-Ml-Key` (hex SHA-256 of that time "
           "followed by ADAPTREC_TOTARA_KEY), within ADAPTREC_TOTARA_SKEW_S (default 300 s) of the server clock; "
           "no API key. Every refusal is a 4xx/5xx with {\"success\": false, \"message\": ...}.")
_FAILURES = dict.fromkeys((400, 401, 404, 409, 422, 500, 503), TotaraFailure)
_BAD = {"tenant": "must be a whole number", "n_items": f"must be a whole number from 1 to {N_ITEMS_MAX}"}


def _param(name: str, description: str, schema: dict, required: bool = True) -> dict:
    return {"name": name, "in": "query", "required": required, "description": description, "schema": schema}


_TENANT = _param("tenant", "Totara's tenant id (0: the site without tenants)", {"type": "integer", "minimum": 0})
_N = _param("n_items", f"how many items (1-{N_ITEMS_MAX}, default 10)",
            {"type": "integer", "minimum": 1, "maximum": N_ITEMS_MAX}, required=False)


def failure(status: int, message: str):
    response = jsonify({"success": False, "message": message, "items": []})
    response.status_code = status
    return response


@bp.errorhandler(InputError)
def _bad_input(exc: InputError):
    return failure(exc.status, str(exc))


@bp.errorhandler(NotFound)
def _not_found(exc: NotFound):
    return failure(404, str(exc))


@bp.errorhandler(answers.NoTotaraComponent)
def _no_component(exc: answers.NoTotaraComponent):
    return failure(exc.status, str(exc))


@bp.errorhandler(DatabaseUnavailable)
@bp.errorhandler(psycopg2.OperationalError)
@bp.errorhandler(psycopg2.InterfaceError)
def _db_down(exc: Exception):
    return failure(503, "the database is not answering; retry shortly")


@bp.errorhandler(HTTPException)
def _http(exc: HTTPException):
    return failure(exc.code or 500, exc.description or exc.name)


@bp.errorhandler(Exception)
def _bug(exc: Exception):
    log.exception("unhandled error")
    return failure(500, "an unexpected error; it has been logged")


def check_signature():
    """The auth gate's check for these endpoints (app.api.auth): None, or the 401 failure."""
    settings = current_app.config["ADAPTREC_SETTINGS"]
    if not settings.totara_key:
        return failure(401, "this service has no Totara key: set ADAPTREC_TOTARA_KEY to the key configured in "
                            "Totara (ml_service_key)")
    problem = totara.check_signature(request.headers.get("X-Totara-Time"), request.headers.get("X-Totara-Ml-Key"),
                                     settings.totara_key, time.time(), settings.totara_skew_s)
    return failure(401, problem) if problem else None


def _arg(parse, name: str, *args):
    try:
        return parse(request.args.get(name), *args)
    except ValueError as exc:
        raise InputError(str(exc), [{"field": name, "message": str(exc)}]) from None


def _tenant() -> str:
    tenant = str(_arg(totara.parse_id, "tenant", "tenant"))
    settings = services().tenants.settings(tenant, services().pool.connection)
    if not (settings or {}).get("totara"):   # only tenants Totara's export filled: never a platform's own
        raise NotFound(f"no such tenant {tenant}: import its export first (adaptrec import --format totara)")
    g.tenant = tenant   # for the access log, as the auth gate sets it for /v1
    return tenant


def _n_items() -> int:
    return _arg(totara.parse_n_items, "n_items", N_ITEMS_MAX)


def _numbered(ranked: list[tuple[str, float]]) -> list[tuple[int, float]]:
    """[(number, score)]: Totara reads the bare number of each item id (app.totara.answers gives whole ids)."""
    return [(totara.split_item_id(item_id)[1], score) for item_id, score in ranked]


@bp.get("/user-items")
@documented("get", "/user-items", "Totara: personalised top-N items of one type for a user", tag="totara",
            public=True, responses={200: TotaraItems, **_FAILURES},
            description="Items of `item_type` the user has not engaged with positively, best first, from the "
                        "tenant's model fitted live to the user's history. A user without history gets the "
                        "type's most popular items. A tenant whose items have no Totara component at all (its "
                        "export gave none, in item_data or the ids) is a 409 saying so. " + _SIGNED,
            params=[_param("totara_user_id", "Totara's user id", {"type": "integer", "minimum": 0}),
                    _param("item_type", "Totara component", {"type": "string", "enum": list(totara.ITEM_TYPES)}),
                    _TENANT, _N],
            unprocessable={**_BAD, "totara_user_id": "must be a whole number",
                           "item_type": f"must be one of {', '.join(totara.ITEM_TYPES)}"})
def user_items():
    user = str(_arg(totara.parse_id, "totara_user_id", "totara_user_id"))
    component = _arg(totara.parse_item_type, "item_type")
    n = _n_items()
    tenant = _tenant()
    ctx = request_context(tenant)
    with ctx.conn:
        ranked = answers.user_items(ctx, user, component, n)
    return totara.items_body(_numbered(ranked))


@bp.get("/similar-items")
@documented("get", "/similar-items", "Totara: items of the same type most similar to an item", tag="totara",
            public=True, responses={200: TotaraItems, **_FAILURES},
            description="Nearest items of the same component by cosine over the tenant's model's item vectors "
                        "(in the hybrid modes an item nobody engaged with has one from its metadata). An unknown "
                        "engage_articleN is looked up as engage_microlearningN, as Totara's service does. " + _SIGNED,
            params=[_param("totara_item_id", "Totara's item id: component and number, e.g. engage_article12",
                           {"type": "string", "pattern": "^[a-z][a-z0-9_]*[a-z][0-9]+$", "maxLength": 60}),
                    _TENANT, _N],
            unprocessable={**_BAD, "totara_item_id": "must be a component name followed by a number"})
def similar_items():
    item_id = request.args.get("totara_item_id")
    if item_id is None:
        raise InputError("totara_item_id is required, e.g. engage_article12", [{"field": "totara_item_id"}])
    _arg(totara.split_item_id, "totara_item_id")
    n = _n_items()
    tenant = _tenant()
    ctx = request_context(tenant)
    with ctx.conn:
        ranked = answers.similar_items(ctx, item_id, n)
    return totara.items_body(_numbered(ranked))


@bp.get("/health-check")
@documented("get", "/health-check", "Totara: is the service ready; tenants, modes and model ages", tag="totara",
            public=True, responses={200: TotaraHealth, 401: TotaraFailure, 500: TotaraFailure, 503: TotaraHealth},
            description="`totara` is an object (Totara's health check prints it as `key: value` lines); `errors` "
                        "names what Totara's administrator should fix. " + _SIGNED)
def health_check():
    errors: list[str] = []
    info: dict = {"service": "adaptrec", "version": _version()}
    try:
        conn = get_conn()
        with conn:
            rows = q.fetch_all(conn, "totara_health", components=list(totara.ITEM_TYPES))
            # a tenant with items but none of a Totara component: /user-items refuses it (app.totara.answers)
            unanswerable = {r["tenant"]: answers.component_problem(conn, r["tenant"])
                            for r in rows if r["items"] and not r["component_items"]}
    except (DatabaseUnavailable, psycopg2.Error):
        return jsonify({"success": False, "message": "the database is not answering", "totara": info,
                        "errors": ["the database is not answering"]}), 503
    info["tenants"] = ", ".join(r["tenant"] for r in rows) or "none"
    for r in rows:
        mode = ((r["settings"] or {}).get("training") or {}).get("mode", "mf")
        if r["model_age_s"] is None:
            state = "no model: answers come from popularity"
            if r["users"] < 10 or r["items"] < 10:
                state += f" ({r['users']} users, {r['items']} items: fewer than Totara's minimum of 10)"
            else:
                errors.append(f"tenant {r['tenant']}: no model yet; run `adaptrec train --all`")
        else:
            hours = r["model_age_s"] / 3600
            state = f"model trained {hours:.1f} h ago on {r['users']} users and {r['items']} items"
            if hours > 48:
                errors.append(f"tenant {r['tenant']}: the model is {hours:.0f} h old; is the nightly "
                              "`adaptrec train --all` running?")
        if unanswerable.get(r["tenant"]):
            errors.append(unanswerable[r["tenant"]])
            state += "; no item has a Totara component: /user-items refuses it"
        info[f"tenant {r['tenant']}"] = f"mode {mode}; {state}"
    return jsonify({"success": True, "totara": info, "errors": errors})


def _version() -> str:
    try:
        return version("adaptrec")
    except PackageNotFoundError:
        return "unknown"


for _view in (user_items, similar_items, health_check):
    _view.totara = True   # app.api.auth checks Totara's signature instead of an API key
