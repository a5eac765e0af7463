"""Ids with '/' in them, addressable by path.

An id may hold any character but control characters ("course/7/q3" included); a client puts it
in a path as course%2F7%2Fq3. WSGI servers decode PATH_INFO, so that would arrive as three path
segments and match no route (or another one: PUT /v1/items/x/similar). Routing here reads the
raw request path instead, decodes it segment by segment with each %2F held as a control
character no id can contain, and the route converter turns that back into '/' inside the id.
An unescaped '/' still separates segments, as HTTP says.
"""
from __future__ import annotations

import re
from urllib.parse import unquote_to_bytes, urlsplit

from werkzeug.routing import UnicodeConverter

_ENCODED_SLASH = re.compile(r"%2[fF]")
_HELD_SLASH = "\x1f"  # a control character: never part of an id (app.catalogue.records.id_problem)


class IdConverter(UnicodeConverter):
    """The default converter of every route: one path segment, a held %2F read as '/'."""

    def to_python(self, value: str) -> str:
        return value.replace(_HELD_SLASH, "/")

    def to_url(self, value: str) -> str:
        return super().to_url(value).replace("/", "%2F")


class EncodedSlashes:
    """WSGI middleware: PATH_INFO from the raw request path, each %2F held apart from the '/'s."""

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
        if raw and _ENCODED_SLASH.search(raw):
            path = urlsplit(raw).path if "://" in raw.split("?", 1)[0] else raw.split("?", 1)[0]
            path = path.removeprefix(environ.get("SCRIPT_NAME", ""))
            # Decoded as a WSGI server decodes PATH_INFO (bytes as latin-1, PEP 3333).
            parts = [unquote_to_bytes(part).decode("latin-1") for part in _ENCODED_SLASH.split(path)]
            if not any(_HELD_SLASH in part for part in parts):  # else a %1F: leave it for the id check
                environ["PATH_INFO"] = _HELD_SLASH.join(parts)
        return self.app(environ, start_response)
