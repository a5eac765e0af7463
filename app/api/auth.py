"""API keys: `Authorization: Bearer <key>` on every endpoint except the health checks."""
from __future__ import annotations

import hmac

from flask import current_app, request

from app.api.errors import problem


def check_api_key():
    """before_request hook: None lets the request through; otherwise a 401 problem."""
    view = current_app.view_functions.get(request.endpoint) if request.endpoint else None
    if view is None or getattr(view, "public", False):
        return None  # unknown routes fall through to the 404/405 handlers
    header = request.headers.get("Authorization", "")
    scheme, _, key = header.partition(" ")
    challenge = {"WWW-Authenticate": 'Bearer realm="adaptrec"'}
    if scheme.lower() != "bearer" or not key.strip():
        return problem(401, "Unauthorized", "send an API key as 'Authorization: Bearer <key>'", headers=challenge)
    key = key.strip().encode()
    # Compare against every key in constant time so timing reveals nothing about near misses.
    ok = False
    for known in current_app.config["ADAPTREC_SETTINGS"].api_keys:
        ok |= hmac.compare_digest(key, known.encode())
    if not ok:
        return problem(401, "Unauthorized", "the API key is not valid", headers=challenge)
    return None
