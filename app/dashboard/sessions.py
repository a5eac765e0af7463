"""Dashboard sessions: sign in once with an API key, then a cookie (no Flask here).

The cookie carries a random token (256 bits); Postgres keeps its SHA-256 with who signed in, the
tenant on view and the session's CSRF token (migration 008). A session lives SESSION_HOURS and
ends at once when its key is revoked or replaced: each request checks `key_check`, the hash of
the token and the key's current stored hash, against the key as the Keyring knows it now.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from app.infra import queries as q

SESSION_HOURS = 12
READ_SCOPE = "dashboard"     # every page; start/stop of experiments needs admin


@dataclass(frozen=True)
class Session:
    token_hash: str
    key_id: str
    key_name: str
    scopes: frozenset[str]
    key_tenant: str | None     # None: an operator key, which may look at any tenant
    tenant: str                # the tenant on view
    csrf_token: str

    @property
    def operator(self) -> bool:
        return self.key_tenant is None

    def allows(self, scope: str) -> bool:
        return scope in self.scopes or "admin" in self.scopes


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _key_check(token: str, key_hash: str) -> str:
    return _sha(f"{token}:{key_hash}")


def create(conn, principal, key_hash: str, tenant: str, hours: float = SESSION_HOURS) -> str:
    """Store a session for `principal` (an app.access.keys.Principal) looking at `tenant`; returns the
    cookie's token. The caller commits."""
    token = secrets.token_urlsafe(32)
    q.execute(conn, "prune_dashboard_sessions")
    q.execute(conn, "insert_dashboard_session", token_hash=_sha(token), key_id=principal.key_id,
              key_name=principal.name, key_check=_key_check(token, key_hash), scopes=sorted(principal.scopes),
              key_tenant=principal.tenant, tenant=tenant, csrf_token=secrets.token_urlsafe(32),
              ttl_s=int(hours * 3600))
    return token


def load(conn, token: str, live_hash) -> Session | None:
    """The live session of `token`, or None (unknown, expired, or its key revoked or replaced).
    live_hash(key_id) gives the key's current stored hash, None when it no longer works."""
    if not token or len(token) > 100:
        return None
    row = q.fetch_one(conn, "dashboard_session", token_hash=_sha(token))
    if row is None:
        return None
    current = live_hash(row["key_id"])
    if current is None or not hmac.compare_digest(_key_check(token, current), row["key_check"]):
        return None
    return Session(row["token_hash"], row["key_id"], row["key_name"], frozenset(row["scopes"]), row["key_tenant"],
                   row["tenant"], row["csrf_token"])


def end(conn, token: str) -> None:
    q.execute(conn, "delete_dashboard_session", token_hash=_sha(token))
    q.execute(conn, "prune_dashboard_sessions")


def switch_tenant(conn, session: Session, tenant: str) -> None:
    """An operator's session looks at `tenant` from now on; a tenant key's session cannot."""
    if not session.operator and tenant != session.key_tenant:
        raise PermissionError(f"this key belongs to tenant {session.key_tenant!r}; it cannot look at another")
    q.execute(conn, "set_dashboard_session_tenant", token_hash=session.token_hash, new_tenant=tenant)


def same_token(given: str | None, expected: str) -> bool:
    """A form's CSRF token against the session's, in constant time."""
    return bool(given) and hmac.compare_digest(given.encode(), expected.encode())
