"""Per-request observability: the request id, the latency histogram and the JSON access line."""
from __future__ import annotations

import logging
import time
import uuid

from flask import Response, g, request

from app.infra import collector, metrics

access_log = logging.getLogger("adaptrec.access")
# Label values must be a bounded set: gunicorn accepts any upper-case word as a method.
_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}


def request_id() -> str:
    """The caller's X-Request-Id when it is sane, else a new one; echoed on every answer."""
    ctx = g._get_current_object()     # one look-up of the proxy, not one per attribute
    found = ctx.get("request_id")
    if found is None:
        given = request.headers.get("X-Request-Id", "")
        found = ctx.request_id = given if 0 < len(given) <= 128 and given.isprintable() else uuid.uuid4().hex
    return found


def start_timer() -> None:
    g.started = time.perf_counter()
    request_id()


def finish(response: Response) -> Response:
    ctx, req = g._get_current_object(), request._get_current_object()
    rid = request_id()
    response.headers["X-Request-Id"] = rid
    seconds = time.perf_counter() - ctx.get("started", time.perf_counter())
    # The route pattern, not the path: ids must not become label values.
    endpoint = req.url_rule.rule if req.url_rule is not None else "unmatched"
    method = req.method
    metrics.observe_request(endpoint, method if method in _METHODS else "other", response.status_code, seconds)
    principal = ctx.get("principal")
    access_log.info("%s %s %d", method, endpoint, response.status_code, extra={
        "request_id": rid,   # the formatter's own field, given here so it need not look it up
        "event": "request", "method": method, "path": req.path, "endpoint": endpoint,
        "status": response.status_code, "duration_ms": round(seconds * 1000, 2),
        "key_id": principal.key_id if principal else None, "tenant": ctx.get("tenant"),
        "bytes": response.calculate_content_length(),
    })
    collector.request_done()
    return response
