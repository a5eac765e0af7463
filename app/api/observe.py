"""Per-request observability: the request id, the latency histogram and the JSON access line."""
from __future__ import annotations

import logging
import time
import uuid

from flask import Response, g, request

from app.infra import metrics

access_log = logging.getLogger("adaptrec.access")
# Label values must be a bounded set: gunicorn accepts any upper-case word as a method.
_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}


def request_id() -> str:
    """The caller's X-Request-Id when it is sane, else a new one; echoed on every answer."""
    if "request_id" not in g:
        given = request.headers.get("X-Request-Id", "")
        g.request_id = given if 0 < len(given) <= 128 and given.isprintable() else uuid.uuid4().hex
    return g.request_id


def start_timer() -> None:
    g.started = time.perf_counter()
    request_id()


def finish(response: Response) -> Response:
    response.headers["X-Request-Id"] = request_id()
    seconds = time.perf_counter() - g.get("started", time.perf_counter())
    # The route pattern, not the path: ids must not become label values.
    endpoint = request.url_rule.rule if request.url_rule is not None else "unmatched"
    method = request.method if request.method in _METHODS else "other"
    metrics.observe_request(endpoint, method, response.status_code, seconds)
    principal = g.get("principal")
    access_log.info("%s %s %d", request.method, endpoint, response.status_code, extra={
        "event": "request", "method": request.method, "path": request.path, "endpoint": endpoint,
        "status": response.status_code, "duration_ms": round(seconds * 1000, 2),
        "key_id": principal.key_id if principal else None, "tenant": g.get("tenant"),
        "bytes": response.calculate_content_length(),
    })
    return response
