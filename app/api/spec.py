"""The endpoint registry behind /openapi.json and request parsing.

A route declares its body model and responses with @documented; the same model parses the
request (parse_body) and describes it in the OpenAPI document, so the two cannot disagree.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import request
from pydantic import BaseModel, TypeAdapter, ValidationError

from app.errors import InputError


class BadRequest(InputError):
    status = 400


class UnsupportedMediaType(InputError):
    status = 415


SCOPES = ("serve", "ingest", "admin")


def default_scope(method: str, tag: str) -> str:
    """The API key scope an operation needs: reads and recommendations are `serve`, recording
    interactions is `ingest`, changing the catalogue, experiments or models is `admin`."""
    if tag == "recommendations" or method.lower() == "get":
        return "serve"
    if tag == "interactions":
        return "ingest"
    return "admin"


@dataclass
class Endpoint:
    method: str
    path: str            # OpenAPI form: /v1/items/{item_id}
    summary: str
    tag: str
    body: Any = None     # a pydantic model or a Union of models
    responses: dict[int, Any] = field(default_factory=dict)
    public: bool = False
    params: list[dict] = field(default_factory=list)
    scope: str | None = None  # None for public operations
    description: str | None = None
    # Why a schema-valid request can still be refused with 422, by the field the problem names:
    # rules JSON Schema cannot state, above all ids that must name existing rows.
    unprocessable: dict[str, str] = field(default_factory=dict)
    # How a protected operation documents its key: "bearer", or "basic" (the xAPI endpoints, as an LRS is
    # called; they take a Bearer key too, which their description says).
    security: tuple[str, ...] = ("bearer",)


ENDPOINTS: list[Endpoint] = []


def documented(method: str, path: str, summary: str, *, tag: str, body: Any = None,
               responses: dict[int, Any] | None = None, public: bool = False,
               params: list[dict] | None = None, scope: str | None = None, description: str | None = None,
               unprocessable: dict[str, str] | None = None, basic_auth: bool = False) -> Callable:
    scope = None if public else (scope or default_scope(method, tag))
    assert scope is None or scope in SCOPES, scope
    params = params or []

    def register(view: Callable) -> Callable:
        ENDPOINTS.append(Endpoint(method.lower(), path, summary, tag, body, responses or {}, public,
                                  params, scope, description, unprocessable or {},
                                  ("basic",) if basic_auth else ("bearer",)))
        view.public = public
        view.scope = scope
        view.basic_auth = basic_auth
        # The query parameters app.api.query.check_query lets through; lists may be repeated.
        view.query = {p["name"]: p["schema"].get("type") == "array" for p in params if p["in"] == "query"}
        return view
    return register


def _location(loc: tuple) -> str:
    parts = []
    for p in loc:
        if isinstance(p, int):
            parts.append(f"[{p}]")
        else:
            parts.append(("." if parts else "") + str(p))
    return "".join(parts) or "(body)"


def validation_problem(exc: ValidationError, prefix: str = "") -> InputError:
    errors = []
    for err in exc.errors(include_url=False):
        loc = _location(tuple(x for x in err["loc"] if not (isinstance(x, str) and x.startswith("function-"))))
        message = err["msg"].removeprefix("Value error, ")
        errors.append({"field": prefix + loc, "message": message})
    first = errors[0]
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return InputError(f"{first['field']}: {first['message']}{more}", errors)


def request_json() -> Any:
    if not request.mimetype or request.mimetype != "application/json":
        raise UnsupportedMediaType(
            f"send the body as JSON with Content-Type: application/json (got {request.mimetype or 'none'!r})")
    raw = request.get_data(cache=False)
    if not raw:
        raise BadRequest("the request body is empty; send a JSON object")
    try:
        return json.loads(raw)
    except UnicodeDecodeError:
        raise BadRequest("the body is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise BadRequest(f"malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except (RecursionError, ValueError):  # after JSONDecodeError, which is a ValueError
        raise BadRequest("the JSON is nested too deeply or holds a number too long to read") from None


def parse_body(model: Any) -> Any:
    data = request_json()
    try:
        if isinstance(model, type) and issubclass(model, BaseModel):
            if not isinstance(data, dict):
                raise InputError(f"the body must be a JSON object, not {type(data).__name__}")
            return model.model_validate(data)
        return TypeAdapter(model).validate_python(data)
    except ValidationError as exc:
        raise validation_problem(exc) from None
