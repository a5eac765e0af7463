"""gunicorn's workers (sync, and gthread: `adaptrec serve`'s default, which keeps connections
alive), answering the requests gunicorn refuses itself (a request line over
the limit, a malformed header, too many headers...) with application/problem+json like every
other error, instead of gunicorn's HTML page.

gunicorn decides the status, logs the warning and writes its page in Worker.handle_error; the
page is captured here instead of sent, and its status line is answered as a problem. gunicorn
keeps deciding which exception means which status, so a new one in a later version is still
answered with gunicorn's status, not misfiled as a 500.
"""
from __future__ import annotations

import json
import logging
import uuid

from gunicorn import glogging, util
from gunicorn.workers.gthread import ThreadWorker
from gunicorn.workers.sync import SyncWorker

access_log = logging.getLogger("adaptrec.access")

_HINTS = {  # what the caller can do about each status gunicorn answers
    400: "the request is not valid HTTP/1.1",
    403: "the request is forbidden",
    414: "the request line (method, path and query) is longer than {limit_request_line} bytes; "
         "send long lists in a POST body",
    417: "only 'Expect: 100-continue' is understood",
    431: "at most {limit_request_fields} header fields of at most {limit_request_field_size} bytes each",
    501: "send the body with Content-Length or 'Transfer-Encoding: chunked'",
}


class _CapturedPage:
    """Stands in for the client socket while gunicorn writes its HTML error page."""

    def __init__(self):
        self.data = b""

    def gettimeout(self):
        return 0.0  # already non-blocking: util.write_nonblock writes straight through

    def sendall(self, data: bytes) -> None:
        self.data += data

    def status(self) -> tuple[int, str]:
        _, code, reason = self.data.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
        return int(code), reason


def problem_response(status: int, title: str, detail: str, request_id: str) -> bytes:
    """A complete HTTP/1.1 answer carrying an RFC 9457 problem, as app.api.errors.problem builds."""
    body = json.dumps({"type": "about:blank", "title": title, "status": status, "detail": detail}).encode()
    head = (f"HTTP/1.1 {status} {title}\r\nConnection: close\r\nContent-Type: application/problem+json\r\n"
            f"Content-Length: {len(body)}\r\nX-Request-Id: {request_id}\r\n\r\n")
    return head.encode("latin-1") + body


class ProblemMixin:
    def handle_error(self, req, client, addr, exc):
        page = _CapturedPage()
        super().handle_error(req, page, addr, exc)  # classifies, logs, writes its page into `page`
        status, title = page.status()
        if status >= 500 and status != 501:
            detail = "an unexpected error; it has been logged"  # never the exception's text
        else:
            hint = _HINTS.get(status, _HINTS[400]).format(
                limit_request_line=self.cfg.limit_request_line, limit_request_fields=self.cfg.limit_request_fields,
                limit_request_field_size=self.cfg.limit_request_field_size)
            detail = f"{hint} ({str(exc)[:200]})"
        request_id = uuid.uuid4().hex
        # The app's access line (app/api/observe.py) never runs for these: write one like it.
        access_log.info("%s %s %d", getattr(req, "method", None), "unparsed", status, extra={
            "event": "request", "request_id": request_id, "method": getattr(req, "method", None),
            "path": getattr(req, "path", None), "endpoint": "unparsed", "status": status, "key_id": None})
        try:
            util.write_nonblock(client, problem_response(status, title, detail, request_id))
        except Exception:  # the client may be gone already; gunicorn ignores this too
            self.log.debug("Failed to send error message.")


class ProblemSyncWorker(ProblemMixin, SyncWorker):
    """gunicorn's sync worker (one connection per request): `--worker-class
    cli.gunicorn_worker.ProblemSyncWorker`."""


class ProblemThreadWorker(ProblemMixin, ThreadWorker):
    """worker_class of cli/gunicorn_conf.py: gunicorn's gthread worker (keep-alive connections)."""


class Logger(glogging.Logger):
    """gunicorn's logger without its access line: the app writes its own (app/api/observe.py), and
    gunicorn would otherwise build every request's access fields (a dict of some 40 atoms) just to
    drop them, because a logging configuration is set (logger_class of cli/gunicorn_conf.py)."""

    def access(self, resp, req, environ, request_time):
        return None

    def access_log_enabled(self):
        return False
