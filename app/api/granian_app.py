"""The WSGI target of `adaptrec serve --server granian` (cli/granian_main.py names it, as
cli/serve.py names app.api.factory:create_app() to gunicorn), loaded in each
Granian worker: the app of app.api.factory, behind the request-head limits gunicorn enforces
itself (cli/gunicorn_conf.py), and a recommendation log written when the worker stops.

Limits: Granian (hyper underneath) has no limit on the request line or on the number of header
fields, only on the whole head (--http1-buffer-size, set in cli/granian_main.py). The service's
promise (/openapi.json) is 414 past REQUEST_LINE_MAX_BYTES and 431 past HEADER_FIELDS_MAX fields
or a field over HEADER_FIELD_MAX_BYTES, as application/problem+json: this middleware answers
them, with an access line like the app's. What hyper refuses itself (a head over the buffer, a
request line that is not HTTP) it answers with a bare status and no body: see docs/OPERATIONS.md.

Stop: Granian ends a worker through multiprocessing, whose children leave with os._exit, so the
atexit hook of app.serving.recommendation_log never runs there; a multiprocessing finalizer
(run when the worker's target returns, after Granian's graceful stop) writes the buffered rows.
"""
from __future__ import annotations

import json
import logging
import uuid
from multiprocessing import util as mp_util

from app.config import HEADER_FIELD_MAX_BYTES, HEADER_FIELDS_MAX, REQUEST_LINE_MAX_BYTES

access_log = logging.getLogger("adaptrec.access")

# The HTTP/1.1 request line is "METHOD SP target SP HTTP/1.1": gunicorn counts it without CRLF.
_LINE_EXTRA = len(" ") * 2 + len("HTTP/1.1")


def _problem(start_response, status: int, title: str, detail: str, environ: dict) -> list[bytes]:
    request_id = uuid.uuid4().hex
    access_log.info("%s %s %d", environ.get("REQUEST_METHOD"), "unparsed", status, extra={
        "event": "request", "request_id": request_id, "method": environ.get("REQUEST_METHOD"),
        "path": environ.get("PATH_INFO"), "endpoint": "unparsed", "status": status, "key_id": None})
    body = json.dumps({"type": "about:blank", "title": title, "status": status, "detail": detail}).encode()
    start_response(f"{status} {title}", [("Content-Type", "application/problem+json"),
                                         ("Content-Length", str(len(body))), ("Connection", "close"),
                                         ("X-Request-Id", request_id)])
    return [body]


def refusal(environ: dict) -> tuple[int, str, str] | None:
    """(status, title, detail) when the request head is past the limits gunicorn enforces, else None."""
    target = environ.get("RAW_URI") or environ.get("PATH_INFO", "")
    query = environ.get("QUERY_STRING", "")
    if "RAW_URI" not in environ and query:
        target = f"{target}?{query}"
    line = len(environ.get("REQUEST_METHOD", "")) + len(target.encode("latin-1", "replace")) + _LINE_EXTRA
    if line > REQUEST_LINE_MAX_BYTES:
        return (414, "Request-URI Too Long",
                f"the request line (method, path and query) is longer than {REQUEST_LINE_MAX_BYTES} bytes; "
                f"send long lists in a POST body ({line} bytes)")
    fields = 0
    for key, value in environ.items():
        if key.startswith("HTTP_") or key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            fields += 1
            size = len(key) - (5 if key.startswith("HTTP_") else 0) + 2 + len(str(value))
            if size > HEADER_FIELD_MAX_BYTES:
                return (431, "Request Header Fields Too Large",
                        f"at most {HEADER_FIELDS_MAX} header fields of at most {HEADER_FIELD_MAX_BYTES} "
                        f"bytes each (a field of {size} bytes)")
    if fields > HEADER_FIELDS_MAX:
        return (431, "Request Header Fields Too Large",
                f"at most {HEADER_FIELDS_MAX} header fields of at most {HEADER_FIELD_MAX_BYTES} bytes each "
                f"({fields} fields)")
    return None


class Limits:
    """WSGI middleware: the request-head limits of cli/gunicorn_conf.py, as problems."""

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        refused = refusal(environ)
        if refused is not None:
            return _problem(start_response, *refused, environ)
        return self.app(environ, start_response)


def _flush_recommendation_log() -> None:
    from app.serving import recommendation_log

    recommendation_log.close_all()


def create() -> Limits:
    from app.api.factory import create_app

    # exitpriority: run by multiprocessing when the worker's target returns (a graceful stop)
    mp_util.Finalize(None, _flush_recommendation_log, exitpriority=10)
    return Limits(create_app())
