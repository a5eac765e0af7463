"""GET /openapi.json, built from the endpoint registry and the pydantic models."""
from __future__ import annotations

import typing
from http import HTTPStatus

from flask import Blueprint, current_app
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from app.api.schemas import MAX_BATCH, Problem
from app.api.spec import ENDPOINTS, documented

bp = Blueprint("openapi", __name__)
REF = "#/components/schemas/{model}"

# Answers any operation can give besides its own: the auth and rate-limit gate and a database
# outage on every protected operation; body parsing on every operation that takes a body.
_PROTECTED_ERRORS = (401, 403, 429, 503)
_BODY_ERRORS = (400, 413, 415, 422)


def _models(annotation) -> list[type[BaseModel]]:
    args = typing.get_args(annotation)
    return [a for a in args] if args else [annotation]


def build_document(max_body_bytes: int) -> dict:
    models: list[type[BaseModel]] = [Problem]
    for ep in ENDPOINTS:
        if ep.body is not None:
            models.extend(_models(ep.body))
        models.extend(m for m in ep.responses.values() if isinstance(m, type) and issubclass(m, BaseModel))
    unique = list(dict.fromkeys(models))
    _, schemas = models_json_schema([(m, "validation") for m in unique], ref_template=REF)
    components = schemas.get("$defs", {})

    def ref(model) -> dict:
        return {"$ref": REF.format(model=model.__name__)}

    paths: dict = {}
    for ep in ENDPOINTS:
        op: dict = {"summary": ep.summary, "tags": [ep.tag], "operationId": f"{ep.method}_{ep.path}"}
        if ep.params:
            op["parameters"] = ep.params
        if ep.body is not None:
            body_models = _models(ep.body)
            schema = ref(body_models[0]) if len(body_models) == 1 else {"oneOf": [ref(m) for m in body_models]}
            op["requestBody"] = {"required": True, "description": f"JSON, at most {max_body_bytes} bytes (413 above)",
                                 "x-max-body-bytes": max_body_bytes,
                                 "content": {"application/json": {"schema": schema}}}
        responses = dict(ep.responses)
        for status in (() if ep.public else _PROTECTED_ERRORS) + (_BODY_ERRORS if ep.body is not None else ()):
            responses.setdefault(status, Problem)
        op["responses"] = {}
        for status, model in sorted(responses.items()):
            if model is str:  # plain text (the Prometheus exposition)
                content = {"text/plain": {"schema": {"type": "string"}}}
            elif model is dict:  # free JSON (this document)
                content = {"application/json": {"schema": {"type": "object"}}}
            else:
                media = "application/problem+json" if model.__name__ == "Problem" else "application/json"
                content = {media: {"schema": ref(model)}}
            op["responses"][str(status)] = {"description": HTTPStatus(status).phrase, "content": content}
        if not ep.public:
            op["security"] = [{"bearer": []}]
            op["x-scope"] = ep.scope
            op["description"] = (f"Needs an API key with scope `{ep.scope}`"
                                 + (" (or `admin`)." if ep.scope != "admin" else "."))
        paths.setdefault(ep.path, {})[ep.method] = op
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "adaptrec",
            "version": "1",
            "description": (
                "Adaptive recommendations for learning platforms. Every endpoint but /healthz, /readyz, "
                "/metrics and /openapi.json needs 'Authorization: Bearer <key>' with the scope the operation "
                "names (x-scope: serve, ingest or admin; admin includes the others). Each key has a rate limit "
                "(requests per second); over it the answer is 429 with Retry-After. "
                f"Bodies are JSON, at most {max_body_bytes} bytes; batches hold at most {MAX_BATCH} entries. "
                "Errors are application/problem+json."
            ),
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


@bp.get("/openapi.json")
@documented("get", "/openapi.json", "This document", tag="meta", public=True, responses={200: dict})
def openapi_json():
    return build_document(current_app.config["MAX_CONTENT_LENGTH"])
