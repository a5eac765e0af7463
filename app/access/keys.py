"""API keys: scoped, stored hashed, checked in constant time, revocable without a restart.

A key looks like `ar_<key_id>_<secret>`: key_id (12 hex digits) is public and finds the row in
`api_keys`; only the SHA-256 of the whole key is stored. Keys from ADAPTREC_API_KEYS (bootstrap
keys, any text) hold every scope for every tenant (operator keys); they are hashed in memory when
the process starts. Every other key belongs to one tenant, or is an operator key (tenant NULL).

Each worker caches looked-up rows for `ttl_s` seconds, so a revoked key stops working within
that time everywhere without a restart, and a request costs no extra Postgres round trip.
"""
from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING

from app.access.tenants import DEFAULT
from app.infra import queries as q

if TYPE_CHECKING:
    from psycopg2.extensions import connection as Connection

SCOPES = ("serve", "ingest", "admin", "dashboard")   # dashboard: read the /dashboard pages
_KEY = re.compile(r"^ar_([0-9a-f]{12})_([A-Za-z0-9_-]{20,100})$")
_CACHE_MAX = 10_000  # bounds memory when someone sprays random key ids


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's public id, its name, scopes, rate limit (None: the default) and
    tenant (None: an operator key, which names the tenant per request)."""
    key_id: str
    name: str
    scopes: frozenset[str]
    rate_limit_per_s: int | None = None
    tenant: str | None = None

    def allows(self, scope: str) -> bool:
        return scope in self.scopes or "admin" in self.scopes


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def parse_scopes(text: str) -> list[str]:
    """'serve,ingest' -> ['serve', 'ingest']; a clear ValueError for anything else."""
    scopes = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in scopes if s not in SCOPES]
    if not scopes or unknown:
        raise ValueError(f"scopes must be a comma-separated list of {', '.join(SCOPES)}"
                         + (f" (unknown: {', '.join(unknown)})" if unknown else ""))
    return list(dict.fromkeys(scopes))


def create_key(conn: Connection, name: str, scopes: list[str], rate_limit_per_s: int | None = None,
               tenant: str | None = DEFAULT) -> tuple[str, str]:
    """Store a new key of `tenant` (None: an operator key, acting for any tenant); returns (key_id,
    key). The key is shown once: it cannot be recovered."""
    key_id = secrets.token_hex(6)
    key = f"ar_{key_id}_{secrets.token_urlsafe(32)}"
    q.execute(conn, "insert_api_key", key_id=key_id, key_name=name, scopes=list(scopes),
              key_hash=hash_key(key), rate_limit_per_s=rate_limit_per_s, tenant=tenant)
    return key_id, key


def revoke_key(conn: Connection, key_id: str) -> bool:
    """True if a live key was revoked."""
    return q.execute(conn, "revoke_api_key", key_id=key_id) > 0


def list_keys(conn: Connection) -> list[dict]:
    """Every key; `tenant` is '*' for operator keys."""
    return q.fetch_all(conn, "list_api_keys")


class Keyring:
    """Authenticates presented keys for one worker process."""

    def __init__(self, bootstrap_keys: tuple[str, ...] = (), ttl_s: float = 5.0):
        # Bootstrap keys: (hash, principal). Their public id is their position in the list (env-1,
        # env-2, ...): nothing derived from the key itself, which may be short text, shows in logs.
        self._bootstrap = [(hash_key(k), Principal(f"env-{n}", "ADAPTREC_API_KEYS", frozenset(SCOPES)))
                           for n, k in enumerate(bootstrap_keys, start=1)]
        self.ttl_s = ttl_s
        self._known: dict[str, tuple[float, dict]] = {}                  # rows of real keys (few)
        self._unknown: OrderedDict[str, float] = OrderedDict()            # ids with no row, bounded
        self._lock = threading.Lock()

    def authenticate(self, key: str, connection) -> Principal | None:
        """The caller for `key`, or None when the key is unknown, malformed or revoked.

        `connection()` lends a Postgres connection of the keyring's own, in a `with` (e.g.
        ConnectionPool.connection), used only on a cache miss: the request's own transaction is
        never touched."""
        presented = hash_key(key)
        match = _KEY.match(key)
        if match is None:
            found = None
            for known, principal in self._bootstrap:  # no early exit: the time says nothing
                if hmac.compare_digest(presented, known):
                    found = principal
            return found
        row = self._row(match.group(1), connection)
        if row is None or not hmac.compare_digest(presented, row["key_hash"]) or row["revoked_at"] is not None:
            return None
        return Principal(row["key_id"], row["name"], frozenset(row["scopes"]), row["rate_limit_per_s"],
                         row["tenant"])

    def live_hash(self, key_id: str, connection) -> str | None:
        """The stored hash of the key `key_id` while it is live (None once revoked or gone): what a
        dashboard session checks its key against (app.dashboard.sessions), within `ttl_s`."""
        for known, principal in self._bootstrap:
            if principal.key_id == key_id:
                return known
        if not re.fullmatch(r"[0-9a-f]{12}", key_id):
            return None
        row = self._row(key_id, connection)
        return row["key_hash"] if row is not None and row["revoked_at"] is None else None

    def _row(self, key_id: str, connection) -> dict | None:
        now = time.monotonic()
        with self._lock:
            known = self._known.get(key_id)
            if known is not None and now - known[0] < self.ttl_s:
                return known[1]
            missed = self._unknown.get(key_id)
            if missed is not None and now - missed < self.ttl_s:
                return None
        with connection() as conn:
            row = q.fetch_one(conn, "api_key_by_id", key_id=key_id)
            conn.rollback()
        with self._lock:
            if row is not None:
                self._known[key_id] = (now, row)
                self._unknown.pop(key_id, None)
            else:
                # Made-up ids (someone probing) are remembered apart, oldest dropped first, so they
                # never push real keys out of the cache.
                self._known.pop(key_id, None)
                self._unknown[key_id] = now
                self._unknown.move_to_end(key_id)
                while len(self._unknown) > _CACHE_MAX:
                    self._unknown.popitem(last=False)
        return row
