"""GET /openapi.json, built from the endpoint registry and the pydantic models."""
from __future__ import annotations

import typing
from http import HTTPStatus

from flask import Blueprint, current_app
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from app.api.schemas import MAX_BATCH, Problem
from app.api.spec import ENDPOINTS, Endpoint, documented
from app.config import HEADER_FIELD_MAX_BYTES, HEADER_FIELDS_MAX, REQUEST_LINE_MAX_BYTES

bp = Blueprint("openapi", __name__)
REF = "#/components/schemas/{model}"

# Answers any operation can give besides its own: the auth and rate-limit gate and a database
# outage on every protected operation; body parsing on every operation that takes a body.
_PROTECTED_ERRORS = (401, 403, 409, 429, 503)
_BODY_ERRORS = (400, 413, 415, 422)
# Answered by the HTTP server (gunicorn) before the application sees the request, on any
# operation; cli/gunicorn_worker.py makes them problem+json like the rest.
_PROTOCOL_ERRORS = {
    400: "the request is not valid HTTP/1.1 (request line, header name or value, chunked body)",
    414: f"the request line (method, path and query) is longer than {REQUEST_LINE_MAX_BYTES} bytes; "
         "send long lists in a POST body",
    431: f"more than {HEADER_FIELDS_MAX} header fields, or one longer than {HEADER_FIELD_MAX_BYTES} bytes",
}


def _description(ep: Endpoint, status: int) -> str:
    """Why an operation answers `status`: what a client can foresee and fix."""
    text = HTTPStatus(status).phrase
    if status == 422:
        reasons = ["a value breaks its schema (`errors` names each field)"]
        if ep.body is not None:  # a rule the document cannot carry as a pattern (see app.catalogue.records.Text)
            reasons.append("any text in the body must be storable: no NUL (\\u0000) and no unpaired surrogate "
                           "(\\ud800-\\udfff) characters")
        reasons += [f"`{name}`: {rule}" for name, rule in ep.unprocessable.items()]
        return f"{text}: " + "; ".join(reasons) + "."
    if status == 400:
        reasons = [_PROTOCOL_ERRORS[400], "a query parameter the operation does not document, or a "
                                          "single-valued one given twice"]
        if ep.body is not None:
            reasons.append("an empty body or malformed JSON")
        if ep.tag == "xapi":
            reasons.append("no or an unsupported X-Experience-API-Version header; a statement that breaks a rule "
                           "of the xAPI specification (`detail` names the rule and the statement's index; besides "
                           "the schema: score.raw within [min, max], context.revision and platform only for an "
                           "Activity, no id twice in one request, a PUT body's id the statementId)")
        return f"{text}: " + "; ".join(reasons) + "."
    if status in _PROTOCOL_ERRORS:
        return f"{text}: {_PROTOCOL_ERRORS[status]}."
    if status == 409 and ep.tag == "xapi":
        return f"{text}: a statement id already received with other content (a statement is never changed)."
    if status == 409:
        return (f"{text}: something the request refers to was deleted while it ran (a tenant removed seconds "
                "ago, an item); check it exists, then retry.")
    return text


def _models(annotation) -> list[type[BaseModel]]:
    args = typing.get_args(annotation)
    return list(args) if args else [annotation]


def build_document(max_body_bytes: int) -> dict:
    """The OpenAPI 3.1 document of every endpoint in the registry (app.api.spec)."""
    paths: dict = {}
    for ep in ENDPOINTS:
        paths.setdefault(ep.path, {})[ep.method] = _operation(ep, max_body_bytes)
    return {
        "openapi": "3.1.0",
        "info": _info(max_body_bytes),
        "paths": paths,
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"},
                                "basic": {"type": "http", "scheme": "basic",
                                          "description": "The xAPI endpoints, as a learning record store is "
                                                         "called: the password is an API key (any username)"}},
        },
    }


def _schemas() -> dict:
    """The JSON Schema of every model a body or an answer uses, by name."""
    models: list[type[BaseModel]] = [Problem]
    for ep in ENDPOINTS:
        if ep.body is not None:
            models.extend(_models(ep.body))
        models.extend(m for m in ep.responses.values() if isinstance(m, type) and issubclass(m, BaseModel))
    unique = list(dict.fromkeys(models))
    _, schemas = models_json_schema([(m, "validation") for m in unique], ref_template=REF)
    return schemas.get("$defs", {})


def _ref(model) -> dict:
    return {"$ref": REF.format(model=model.__name__)}


def _operation(ep: Endpoint, max_body_bytes: int) -> dict:
    """One operation: its summary, parameters, body, every answer it can give, and its scope."""
    op: dict = {"summary": ep.summary, "tags": [ep.tag], "operationId": f"{ep.method}_{ep.path}"}
    if ep.params:
        op["parameters"] = ep.params
    if ep.body is not None:
        body_models = _models(ep.body)
        schema = _ref(body_models[0]) if len(body_models) == 1 else {"oneOf": [_ref(m) for m in body_models]}
        op["requestBody"] = {"required": True, "description": f"JSON, at most {max_body_bytes} bytes (413 above)",
                             "x-max-body-bytes": max_body_bytes,
                             "content": {"application/json": {"schema": schema}}}
    op["responses"] = _responses(ep)
    notes = [ep.description] if ep.description else []
    if not ep.public:
        op["security"] = [{scheme: []} for scheme in ep.security]
        op["x-scope"] = ep.scope
        also = " (or `admin`)." if ep.scope != "admin" else "."
        notes.append(f"Needs an API key with scope `{ep.scope}`{also}")
    if notes:
        op["description"] = " ".join(notes)
    return op


def _responses(ep: Endpoint) -> dict:
    """An operation's answers by status: its own, and the gate's, the body parser's and the HTTP
    server's (all problem+json)."""
    responses = dict(ep.responses)
    for status in ((() if ep.public else _PROTECTED_ERRORS) + (_BODY_ERRORS if ep.body is not None else ())
                   + tuple(_PROTOCOL_ERRORS)):
        responses.setdefault(status, Problem)
    assert 422 in responses or not ep.unprocessable, ep.path  # a rule for an answer never documented
    out = {}
    for status, model in sorted(responses.items()):
        if model is None:  # no content (204)
            out[str(status)] = {"description": _description(ep, status)}
            continue
        if model is str:  # plain text (the Prometheus exposition)
            content = {"text/plain": {"schema": {"type": "string"}}}
        elif model is dict:  # free JSON (this document)
            content = {"application/json": {"schema": {"type": "object"}}}
        else:
            media = "application/problem+json" if model.__name__ == "Problem" else "application/json"
            content = {media: {"schema": _ref(model)}}
            if status in _PROTOCOL_ERRORS and model is not Problem:  # gunicorn's own answer too
                content["application/problem+json"] = {"schema": _ref(Problem)}
        out[str(status)] = {"description": _description(ep, status), "content": content}
    return out


def _info(max_body_bytes: int) -> dict:
    """The document's title and the rules every operation shares."""
    return {
        "title": "adaptrec",
        "version": "1",
        "description": (
            "Adaptive recommendations for learning platforms. Every endpoint but /healthz, /readyz, "
            "/metrics and /openapi.json needs 'Authorization: Bearer <key>' with the scope the operation "
            "names (x-scope: serve, ingest or admin; admin includes the others). Each key has a rate limit "
            "(requests per second); over it the answer is 429 with Retry-After. "
            f"Bodies are JSON, at most {max_body_bytes} bytes; batches hold at most {MAX_BATCH} entries. "
            "Errors are application/problem+json (RFC 9457: type, title, status, detail, and `errors` "
            "naming each field to fix). A request that is valid JSON Schema can still be refused with 422 when "
            "it names ids that do not exist (an interaction's item, a unit's children or items, the units "
            "of a query): each operation's 422 says which. Query strings are strict: a parameter the "
            "operation does not document, or a single-valued one given twice, is a 400. "
            "The HTTP server answers some requests itself, also as problem+json and documented on every "
            f"operation: 400 for malformed HTTP, 414 for a request line over {REQUEST_LINE_MAX_BYTES} bytes, "
            f"431 for over {HEADER_FIELDS_MAX} header fields or one over {HEADER_FIELD_MAX_BYTES} bytes; "
            "also 417 for an Expect other than 100-continue and 501 for a Transfer-Encoding other than chunked."
        ),
    }


@bp.get("/openapi.json")
@documented("get", "/openapi.json", "This document", tag="meta", public=True, responses={200: dict})
def openapi_json():
    return build_document(current_app.config["MAX_CONTENT_LENGTH"])
