"""The gate in front of every protected operation: API key, tenant, scope, rate limit.

`Authorization: Bearer <key>` (the xAPI endpoints also take HTTP Basic, the key as the password);
401 without a valid key, 403 when the key lacks the operation's scope (serve, ingest or admin; admin
includes the others) or names a tenant not its own, 404 when an operator key names a tenant that
does not exist, 429 past the key's rate limit.
"""
from __future__ import annotations

import base64

from flask import current_app, g, request

from app.access.tenants import DEFAULT, TENANT_HEADER
from app.api.context import services
from app.api.errors import problem
from app.infra import metrics

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="adaptrec"'}
_BASIC_CHALLENGE = {"WWW-Authenticate": 'Basic realm="adaptrec xAPI", charset="UTF-8"'}


def _presented_key(basic: bool) -> str:
    """The API key the request presents: `Bearer <key>`; on the xAPI endpoints (`basic`) also HTTP
    Basic, as learning record stores are called: the password is the key (the username is free: a
    platform's name), or the username when the password is empty (`curl -u KEY:`)."""
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    scheme, value = scheme.lower(), value.strip()
    if scheme == "bearer":
        return value
    if scheme == "basic" and basic:
        try:
            username, _, password = base64.b64decode(value, validate=True).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            return ""
        return password or username
    return ""


def check_api_key():
    """before_request hook: None lets the request through; otherwise a problem response."""
    view = current_app.view_functions.get(request.endpoint) if request.endpoint else None
    if view is not None and getattr(view, "totara", False):
        from app.api.totara import check_signature  # Totara's endpoints: its signed headers, no API key

        return check_signature()
    if view is None or getattr(view, "public", False):
        return None  # unknown routes fall through to the 404/405 handlers
    basic = getattr(view, "basic_auth", False)
    challenge = _BASIC_CHALLENGE if basic else _CHALLENGE
    key = _presented_key(basic)
    if not key:
        metrics.AUTH_FAILURES.labels("missing").inc()
        how = ("send HTTP Basic credentials whose password is an adaptrec API key (any username), or "
               "'Authorization: Bearer <key>'") if basic else "send an API key as 'Authorization: Bearer <key>'"
        return problem(401, "Unauthorized", how, headers=challenge)
    shared = services()
    principal = shared.keys.authenticate(key, shared.pool.connection)
    if principal is None:
        metrics.AUTH_FAILURES.labels("invalid").inc()
        return problem(401, "Unauthorized", "the API key is not valid (unknown or revoked)", headers=challenge)
    g.principal = principal
    refused = _choose_tenant(principal)
    if refused is not None:
        return refused
    scope = getattr(view, "scope", "admin")
    if not principal.allows(scope):
        metrics.AUTH_FAILURES.labels("scope").inc()
        return problem(403, "Forbidden", f"this key has scope {', '.join(sorted(principal.scopes))}; "
                                         f"{request.method} {request.url_rule.rule} needs '{scope}'")
    settings = current_app.config["ADAPTREC_SETTINGS"]
    limit = principal.rate_limit_per_s or settings.rate_limit_per_s
    decision = shared.rate_limiter.check(principal.key_id, limit)
    if not decision.checked:
        metrics.RATE_UNCHECKED.inc()
    if not decision.allowed:
        metrics.RATE_LIMITED.labels(principal.key_id).inc()
        return problem(429, "Too Many Requests",
                       f"this key may make {decision.limit} requests per second; retry after "
                       f"{decision.retry_after_s} s or ask for a higher limit",
                       headers={"Retry-After": str(decision.retry_after_s),
                                "RateLimit-Limit": str(decision.limit), "RateLimit-Remaining": "0"})
    return None


def _choose_tenant(principal):
    """Set g.tenant: the key's own tenant, or for an operator key the one named in the header
    (the default tenant when none is named). None when the request may go on."""
    named = request.headers.get(TENANT_HEADER, "").strip()
    if principal.tenant is not None:
        if named and named != principal.tenant:
            metrics.AUTH_FAILURES.labels("tenant").inc()
            return problem(403, "Forbidden", f"this key belongs to tenant {principal.tenant!r}; it cannot act "
                                             f"for another (drop the {TENANT_HEADER} header or use that tenant's key)")
        g.tenant = principal.tenant
        return None
    g.tenant = named or DEFAULT
    if not services().tenants.exists(g.tenant, services().pool.connection):
        return problem(404, "Not Found", f"no tenant {g.tenant!r} (header {TENANT_HEADER}); create it with "
                                         f"`adaptrec tenants add {g.tenant}` or name an existing one")
    return None
