"""xAPI statements in, as a learning record store takes them (docs/XAPI.md): POST /xapi/statements
(one statement or a list; answers their ids), PUT /xapi/statements?statementId= (204), GET
/xapi/about. Every request but /about carries X-Experience-API-Version (1.0.x or 2.0.0; else 400),
and every answer carries the version it is given in. Keys come as HTTP Basic (the password is an
adaptrec API key) or Bearer, with the `ingest` scope; the tenant is the key's.

Thin: app.xapi.statements validates, app.catalogue.xapi_ingest maps and stores.
"""
from __future__ import annotations

from collections import Counter

from flask import Blueprint, Response, g, jsonify, request

from app.api.context import current_tenant, get_cache, get_conn, request_context, services
from app.api.schemas import MAX_BATCH, Problem, XapiAbout, XapiStatement, XapiStatementIds, XapiStatements
from app.api.spec import BadRequest, documented, request_json
from app.catalogue.xapi_ingest import record_statements
from app.errors import InputError
from app.infra import metrics
from app.serving import item_learning
from app.xapi import mapping
from app.xapi.statements import VERSIONS, StatementError, check_version_header, validate_batch

bp = Blueprint("xapi", __name__)
HEADER = "X-Experience-API-Version"

_VERSION_PARAM = {"name": HEADER, "in": "header", "required": True,
                  "description": "The xAPI version the client speaks: 1.0.x (answered as 1.0.3) or 2.0.0; "
                                 "the answer carries the version it is given in",
                  "schema": {"type": "string", "enum": ["1.0.0", "1.0.3", "2.0.0"]}}
_STATEMENT_ID = {"name": "statementId", "in": "query", "required": True,
                 "description": "The statement's id (a UUID); the statement's own id, if given, must be the same",
                 "schema": {"type": "string", "format": "uuid"}}
_HOW = ("Each statement is checked as the xAPI specification requires; a malformed one refuses the whole request "
        "(400, naming the rule and the statement's index) and nothing is stored. A valid statement becomes an "
        "interaction under the tenant's rules (settings.xapi: the actor's identifier as the user id, the verb's "
        "kind, the activity as the item, created on first sight unless the tenant says otherwise), or, when it "
        "cannot (unknown verb, no result.success for an attempt, an object that is not an Activity), is accepted "
        "and kept with the reason (view xapi_unmappable). The statement id is the interaction's event_id: a resent "
        "statement is stored once; the same id with other content is a 409. The key: HTTP Basic with an adaptrec API "
        "key as the password (or as the username with an empty password), or Authorization: Bearer <key>.")


class InvalidStatement(InputError):
    status = 400


@bp.before_request
def _check_version():
    """Every xAPI request but /about names the version it speaks (the spec's 400 otherwise)."""
    if request.endpoint == "xapi.about":
        return None
    try:
        g.xapi_version = check_version_header(request.headers.get(HEADER))
    except ValueError as exc:
        metrics.XAPI_STATEMENTS.labels("rejected", "version").inc()
        raise BadRequest(str(exc), [{"field": HEADER, "message": str(exc)}]) from None
    return None


@bp.after_request
def _answer_version(response: Response) -> Response:
    response.headers[HEADER] = g.get("xapi_version", VERSIONS[0])
    return response


def _statements(data, listed_required: bool | None = None) -> list[dict]:
    if isinstance(data, list) and len(data) > MAX_BATCH:
        raise InvalidStatement(f"at most {MAX_BATCH} statements per request; send {len(data)} in several",
                               [{"field": "(body)", "message": "too many statements"}])
    try:
        return validate_batch(data)
    except StatementError as exc:
        metrics.XAPI_STATEMENTS.labels("rejected", exc.rule).inc()
        field = (f"[{exc.index}]." if exc.index is not None else "") + exc.where
        raise InvalidStatement(str(exc) + "; nothing of this request was stored",
                               [{"field": field, "message": f"{exc.message} (rule: {exc.rule})"}]) from None


def _rules() -> mapping.Rules:
    settings = services().tenants.settings(current_tenant(), services().pool.connection) or {}
    try:
        return mapping.rules_from_settings(settings)
    except ValueError as exc:   # the operator's configuration, not the caller's statement
        raise RuntimeError(f"tenant {current_tenant()!r}: {exc}") from None


def _store(statements: list[dict], listed: bool):
    done = record_statements(get_conn(), current_tenant(), get_cache(), statements, _rules(), listed=listed,
                             activities=services().activities)
    item_learning.learn(request_context(), done.events, done.results)   # the items' difficulty, between trainings
    for (status, reason), n in Counter(zip(done.status, done.reasons)).items():
        metrics.XAPI_STATEMENTS.labels(status, reason or "").inc(n)
    return done


@bp.post("/xapi/statements")
@documented("post", "/xapi/statements", "xAPI: store one statement or a list; answers their ids", tag="xapi",
            scope="ingest", basic_auth=True, body=XapiStatements, params=[_VERSION_PARAM],
            responses={200: XapiStatementIds, 400: Problem, 409: Problem}, description=_HOW)
def post_statements():
    data = request_json()
    statements = _statements(data)
    done = _store(statements, listed=isinstance(data, list))
    return jsonify(done.ids)


@bp.put("/xapi/statements")
@documented("put", "/xapi/statements", "xAPI: store one statement under the id given in statementId", tag="xapi",
            scope="ingest", basic_auth=True, body=XapiStatement, params=[_VERSION_PARAM, _STATEMENT_ID],
            responses={204: None, 400: Problem, 409: Problem}, description=_HOW)
def put_statement():
    statement_id = request.args.get("statementId")
    if statement_id is None:
        raise BadRequest("PUT /xapi/statements needs the query parameter statementId (a UUID); to let the server "
                         "choose the id, POST instead", [{"field": "statementId", "message": "required"}])
    data = request_json()
    if isinstance(data, list):
        raise InvalidStatement("PUT takes one statement, not a list; POST a list",
                               [{"field": "(body)", "message": "a list"}])
    probe = {**data, "id": statement_id} if isinstance(data, dict) else data
    if isinstance(data, dict) and "id" in data and str(data["id"]).lower() != statement_id.lower():
        raise InvalidStatement(f"the statement's id {data['id']!r:.60} is not the statementId {statement_id!r:.60}",
                               [{"field": "id", "message": "differs from statementId"}])
    (statement,) = _statements(probe)
    _store([statement], listed=False)
    return "", 204


@bp.get("/xapi/about")
@documented("get", "/xapi/about", "xAPI: the versions this endpoint speaks", tag="xapi", public=True,
            responses={200: XapiAbout},
            description="No key and no version header needed, as the xAPI specification has it.")
def about():
    g.xapi_version = VERSIONS[-1]
    return {"version": list(VERSIONS), "extensions": {}}
