"""Tenants: every row of adaptrec belongs to one (migration 007). A single-tenant deployment lives
in DEFAULT and never names it. `adaptrec tenants` and the Totara import create them; removing one
deletes all its data through the foreign keys' ON DELETE CASCADE.

The API learns a request's tenant from its key (app.api.auth); an operator key names it in the
TENANT_HEADER. `TenantDirectory` remembers for a few seconds which tenants exist, per worker,
so that check costs no Postgres round trip per request.
"""
from __future__ import annotations

import json
import re
import threading
import time
from typing import TYPE_CHECKING

from app.infra import queries as q

if TYPE_CHECKING:
    from psycopg2.extensions import connection as Connection

DEFAULT = "default"
TENANT_HEADER = "X-Adaptrec-Tenant"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")   # as the tenants table's CHECK


def check_name(name: str) -> str:
    """The name, or a ValueError saying what a tenant name may hold."""
    if not isinstance(name, str) or not NAME.match(name):
        raise ValueError(f"a tenant name is 1-64 letters, digits, '_', '.' or '-', starting with a letter "
                         f"or digit; got {name!r}")
    return name


def ensure(conn: Connection, tenant: str, name: str | None = None) -> bool:
    """Create the tenant unless it exists; True when it was created."""
    return q.fetch_one(conn, "ensure_tenant", tenant=check_name(tenant), display_name=name) is not None


def set_settings(conn: Connection, tenant: str, settings: dict) -> dict:
    """Merge `settings` into the tenant's (top-level keys replace)."""
    return q.fetch_one(conn, "set_tenant_settings", tenant=tenant, settings=json.dumps(settings))["settings"]


def set_training(conn: Connection, tenant: str, **training) -> dict:
    """Merge `training` (mode, min_items, ...) into the tenant's settings.training (jobs.train reads it)."""
    row = get(conn, tenant)
    current = ((row or {}).get("settings") or {}).get("training") or {}
    return set_settings(conn, tenant, {"training": {**current, **training}})


def get(conn: Connection, tenant: str) -> dict | None:
    return q.fetch_one(conn, "get_tenant", tenant=tenant)


def list_all(conn: Connection) -> list[dict]:
    return q.fetch_all(conn, "list_tenants")


def names(conn: Connection) -> list[str]:
    return [r["tenant"] for r in q.fetch_all(conn, "tenant_names")]


def counts(conn: Connection, tenant: str) -> dict:
    return q.fetch_one(conn, "tenant_counts", tenant=tenant)


# Redis key kinds that name the tenant (app.catalogue.history, ...)
CACHED = ("hist", "histgen", "cand", "trend", "popular", "expres")


def forget_cached(cache, tenant: str) -> int:
    """Delete the tenant's Redis keys (cached histories, candidate lists, trending), so a tenant
    created again under the same name starts empty. Returns how many were deleted."""
    deleted = 0
    for kind in CACHED:
        batch = []
        for key in cache.client.scan_iter(match=cache.key(kind, tenant, "*"), count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                deleted += cache.client.delete(*batch)
                batch = []
        if batch:
            deleted += cache.client.delete(*batch)
    return deleted


def remove(conn: Connection, tenant: str) -> dict:
    """Delete the tenant and all its data; returns what was deleted, table by table. The default
    tenant can be emptied this way too: it is created again, empty, at once."""
    if get(conn, tenant) is None:
        raise LookupError(f"no tenant {tenant!r}")
    deleted = counts(conn, tenant)
    q.execute(conn, "delete_tenant", tenant=tenant)
    if tenant == DEFAULT:
        ensure(conn, DEFAULT, "the default tenant")
    return deleted


class TenantDirectory:
    """Which tenants exist, with their settings, as seen by one worker within the last `ttl_s` seconds."""

    def __init__(self, ttl_s: float = 5.0):
        self.ttl_s = ttl_s
        self._seen: dict[str, tuple[float, dict | None]] = {}
        self._lock = threading.Lock()

    def exists(self, tenant: str, connection) -> bool:
        return self.settings(tenant, connection) is not None

    def settings(self, tenant: str, connection) -> dict | None:
        """The tenant's settings, None when there is no such tenant. `connection()` lends a Postgres
        connection of the directory's own, in a `with`, used only on a cache miss."""
        if not NAME.match(tenant):
            return None
        now = time.monotonic()
        with self._lock:
            hit = self._seen.get(tenant)
        if hit is not None and now - hit[0] < self.ttl_s:
            return hit[1]
        with connection() as conn:
            row = get(conn, tenant)
            conn.rollback()
        found = (row["settings"] or {}) if row is not None else None
        with self._lock:
            if len(self._seen) > 10_000:   # names sprayed by a caller must not grow memory forever
                self._seen.clear()
            self._seen[tenant] = (now, found)
        return found
