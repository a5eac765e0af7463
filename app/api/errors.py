"""One error handler: every failure becomes application/problem+json (RFC 9457).

Bad input is a 4xx whose detail says what to fix; a dependency outage is a 503; anything else
is a 500 and a bug, logged with its traceback but never shown to the caller.
"""
from __future__ import annotations

import logging

import psycopg2
import psycopg2.errors
from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

from app.errors import InputError, NotFound
from app.infra import metrics
from app.infra.db import DatabaseUnavailable
from app.model.artifact import FormatError

log = logging.getLogger("adaptrec.api")


def problem(status: int, title: str, detail: str, errors: list | None = None, headers: dict | None = None):
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    if errors:
        body["errors"] = errors
    response = jsonify(body)
    response.status_code = status
    response.mimetype = "application/problem+json"
    for k, v in (headers or {}).items():
        response.headers[k] = v
    return response


_TITLES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
           405: "Method Not Allowed", 413: "Payload Too Large", 415: "Unsupported Media Type",
           422: "Unprocessable Content", 503: "Service Unavailable"}


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(InputError)
    def _input(exc: InputError):
        return problem(exc.status, _TITLES.get(exc.status, "Bad Request"), str(exc), exc.errors)

    @app.errorhandler(NotFound)
    def _not_found(exc: NotFound):
        return problem(404, "Not Found", str(exc))

    @app.errorhandler(DatabaseUnavailable)
    @app.errorhandler(psycopg2.OperationalError)
    @app.errorhandler(psycopg2.InterfaceError)
    def _db_down(exc: Exception):
        metrics.DATABASE_UNAVAILABLE.inc()
        log.warning("database unavailable: %s", str(exc).strip().splitlines()[0] if str(exc).strip() else exc)
        return problem(503, "Service Unavailable", "the database is not answering; retry shortly",
                       headers={"Retry-After": "1"})

    @app.errorhandler(FormatError)
    def _unreadable_model(exc: FormatError):
        # The active model was written by a newer adaptrec (a rollback of the code, not of the
        # models): refuse with what to do rather than serve numbers this code does not understand.
        log.error("unreadable model: %s", exc)
        return problem(503, "Service Unavailable", f"{exc}; or activate a model this version reads "
                                                   "(`adaptrec models -v` lists them)")

    @app.errorhandler(psycopg2.errors.ForeignKeyViolation)
    def _vanished(exc: Exception):
        # A row the request refers to was deleted while it ran (a tenant removed seconds ago, whose
        # key the worker still trusts for ADAPTREC_KEY_CACHE_S; an item deleted meanwhile).
        return problem(409, "Conflict", "something this request refers to was deleted while it ran (a removed "
                                        "tenant, item or user); check it exists, then retry")

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        detail = {
            404: "no such endpoint; see /openapi.json",
            405: "this endpoint does not accept that method; see /openapi.json",
            413: f"the body is larger than {app.config['MAX_CONTENT_LENGTH']} bytes; send smaller batches",
        }.get(exc.code, exc.description or "")
        # Keep werkzeug's own headers (Allow on a 405, required by RFC 9110), not its HTML content type.
        headers = {k: v for k, v in exc.get_headers() if k.lower() != "content-type"}
        return problem(exc.code or 500, _TITLES.get(exc.code, exc.name), detail, headers=headers)

    @app.errorhandler(Exception)
    def _bug(exc: Exception):
        log.exception("unhandled error")
        return problem(500, "Internal Server Error", "an unexpected error; it has been logged")
