"""Query strings, read strictly: only the parameters an operation documents, each once (lists
excepted), integers written as plain decimal digits. A strict API refuses `?limit=5` on an
operation that knows only `n`, rather than silently answering as if it had not been asked.
"""
from __future__ import annotations

import re

from flask import current_app, request

from app.api.spec import BadRequest
from app.catalogue.records import identifier
from app.errors import InputError

# ASCII digits only: int() would also take " 5", "+5", "1_0" or "٣". "23.0" is the integer 23 to
# JSON Schema, as in a body.
_INTEGER = re.compile(r"(-?[0-9]{1,18})(?:\.0*)?")


def check_query():
    """before_request hook: a 400 naming any query parameter the operation does not document,
    or a single-valued one given twice."""
    view = current_app.view_functions.get(request.endpoint) if request.endpoint else None
    documented = getattr(view, "query", None)
    if documented is None:
        return None  # unknown routes fall through to the 404/405 handlers
    for name in request.args:
        if name not in documented:
            accepted = ", ".join(documented) or "no query parameters"
            raise BadRequest(f"unknown query parameter {name!r}; this operation accepts {accepted}",
                             [{"field": name, "message": "unknown query parameter"}])
        if not documented[name] and len(request.args.getlist(name)) > 1:
            raise BadRequest(f"query parameter {name} was given more than once; give it once",
                             [{"field": name, "message": "repeated"}])
    return None


def int_arg(name: str, default: int, lo: int, hi: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    match = _INTEGER.fullmatch(raw)
    if match is None:
        raise InputError(f"query parameter {name} must be a whole number in digits, got {raw[:50]!r}",
                         [{"field": name, "message": "not an integer"}])
    value = int(match.group(1))
    if not lo <= value <= hi:
        raise InputError(f"query parameter {name} must be between {lo} and {hi}, got {value}",
                         [{"field": name, "message": f"out of range {lo}..{hi}"}])
    return value


def ids_arg(name: str, most: int) -> list[str] | None:
    """A comma-separated list of ids (`units=a,b`; repeating `units=` adds to it); None when absent.
    Every entry must be an id: an empty `units=` or `units=a,,b` is refused, not read as "all"."""
    values = [v for raw in request.args.getlist(name) for v in raw.split(",")]
    if len(values) > most:
        raise InputError(f"{name}: at most {most} ids", [{"field": name, "message": "too many"}])
    return [identifier(name, v) for v in values] or None
