"""Candidate items of a request: the active items under the requested units (the recursive
SQL), cached under the catalogue version, so any change to items or the hierarchy (API,
import, psql: a trigger bumps the version) makes cached lists unreachable.

Two levels: each worker keeps recent lists in memory (with the item -> position map the
strategies need), and Redis shares them between workers and restarts. Each worker reads a
tenant's version at most once per VERSION_TTL_S (an indexed single-row query), so a change
made anywhere (another worker, an import, psql) is seen by every worker within a second, and a
change made through this worker's own API at once (CandidateCache.forget_version).
"""
from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import redis

from app.catalogue import catalog
from app.errors import UnknownIds
from app.infra import metrics
from app.infra import queries as q

if TYPE_CHECKING:
    from psycopg2.extensions import connection as Connection

    from app.infra.cache import Cache

log = logging.getLogger("adaptrec.candidates")
TTL_S = 3600
LOCAL_MAX = 256
LOCAL_MAX_ITEMS = 200_000   # candidates held in all, each laid out per model (~270 B at d = 32): ~55 MB
VERSION_TTL_S = 1.0
DERIVED_MAX = 256           # remember()'s entries (a knowledge plan: a few hundred kB at a 20-skill unit)


@dataclass
class Candidates:
    version: int
    items: list[str]                                   # sorted by id
    positions: dict[str, int] = field(default_factory=dict)
    rows: dict = field(default_factory=dict)           # model_id -> the items laid out for it (CandidateRows)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def laid_out(self, model_id: int, lay_out: Callable[[], object]):
        """The items laid out for model `model_id`, made by `lay_out()` the first time (the list is
        shared by a worker's threads: the entry owns its layouts and their lock)."""
        with self._lock:
            laid = self.rows.get(model_id)
        if laid is None:
            laid = lay_out()      # outside the lock: a layout may read Postgres (a hybrid's new items)
            with self._lock:
                laid = self.rows.setdefault(model_id, laid)
        return laid


class CandidateCache:
    """Per-worker memory of recent candidate lists, keyed by (tenant, catalogue version, units)."""

    def __init__(self, version_ttl_s: float = VERSION_TTL_S):
        self._derived: OrderedDict[tuple, object] = OrderedDict()   # remember(): built from the catalogue
        self._lists: OrderedDict[tuple, Candidates] = OrderedDict()
        self._items = 0                                      # candidates held, over every list
        self._versions: dict[str, tuple[float, int]] = {}   # tenant -> (read at, catalogue version)
        self.version_ttl_s = version_ttl_s
        self._lock = threading.Lock()

    def version(self, conn: Connection, tenant: str) -> int:
        """The tenant's catalogue version, read from Postgres at most once per version_ttl_s."""
        now = time.monotonic()
        known = self._versions.get(tenant)
        if known is not None and now - known[0] < self.version_ttl_s:
            return known[1]
        version = catalog_version(conn, tenant)
        self._versions[tenant] = (now, version)
        return version

    def forget_version(self, tenant: str) -> None:
        """This worker changed the tenant's catalogue: read the version again on the next request."""
        self._versions.pop(tenant, None)

    def remember(self, key: tuple, build: Callable[[], object]) -> object:
        """What `build()` makes from the catalogue, kept under `key` (which must hold the tenant and
        its catalogue version, so a change to the catalogue makes it unreachable); the newest
        DERIVED_MAX are kept. Built outside the lock (it reads Postgres); an exception is not kept."""
        with self._lock:
            found = self._derived.get(key)
            if found is not None:
                self._derived.move_to_end(key)
                return found
        made = build()
        with self._lock:
            made = self._derived.setdefault(key, made)
            while len(self._derived) > DERIVED_MAX:
                self._derived.popitem(last=False)
        return made

    def get(self, key: tuple) -> Candidates | None:
        with self._lock:
            found = self._lists.get(key)
            if found is not None:
                self._lists.move_to_end(key)
            return found

    def put(self, key: tuple, value: Candidates) -> None:
        with self._lock:
            old = self._lists.pop(key, None)
            self._items += len(value.items) - (len(old.items) if old is not None else 0)
            self._lists[key] = value
            while len(self._lists) > 1 and (len(self._lists) > LOCAL_MAX or self._items > LOCAL_MAX_ITEMS):
                _, dropped = self._lists.popitem(last=False)
                self._items -= len(dropped.items)


def catalog_version(conn: Connection, tenant: str) -> int:
    row = q.fetch_one(conn, "catalog_version", tenant=tenant)
    return row["version"] if row else 0


def check_units(conn: Connection, tenant: str, unit_ids: list[str]) -> None:
    """UnknownIds naming any of `unit_ids` that is not a unit."""
    found = {r["id"] for r in q.fetch_all(conn, "existing_units", tenant=tenant, ids=list(unit_ids))}
    missing = [u for u in unit_ids if u not in found]
    if missing:
        raise UnknownIds("units", missing)


def resolve(conn: Connection, tenant: str, cache: Cache, local: CandidateCache | None,
            unit_ids: list[str]) -> Candidates:
    """The candidates under `unit_ids`; UnknownIds if a unit does not exist."""
    version = local.version(conn, tenant) if local is not None else catalog_version(conn, tenant)
    units = tuple(sorted(set(unit_ids)))
    key = (tenant, version, units)
    found = local.get(key) if local is not None else None
    if found is not None:
        metrics.CACHE_REQUESTS.labels("candidates", "hit").inc()
        return found
    check_units(conn, tenant, list(units))
    items = _shared(conn, tenant, cache, version, units)
    found = Candidates(version, items, {item_id: i for i, item_id in enumerate(items)})
    if local is not None:
        local.put(key, found)
    return found


def _shared(conn: Connection, tenant: str, cache: Cache, version: int, units: tuple) -> list[str]:
    digest = hashlib.sha1(json.dumps(units).encode()).hexdigest()
    key = cache.key("cand", tenant, str(version), digest)
    try:
        raw = cache.client.get(key)
        if raw is not None:
            metrics.CACHE_REQUESTS.labels("candidates", "hit").inc()
            return json.loads(raw)
    except (redis.RedisError, OSError) as exc:
        log.warning("candidate cache unavailable: %s", exc)
        metrics.CACHE_REQUESTS.labels("candidates", "error").inc()
        return catalog.items_under_units(conn, tenant, list(units))
    metrics.CACHE_REQUESTS.labels("candidates", "miss").inc()
    items = catalog.items_under_units(conn, tenant, list(units))
    try:
        cache.client.set(key, json.dumps(items), ex=TTL_S)
    except (redis.RedisError, OSError) as exc:
        log.warning("candidate cache write failed: %s", exc)
    return items


def items_under(conn: Connection, tenant: str, cache: Cache, unit_ids: list[str]) -> tuple[list[str], int]:
    """Active item ids under the units (no per-worker memory); and the catalogue version."""
    found = resolve(conn, tenant, cache, None, unit_ids)
    return found.items, found.version
