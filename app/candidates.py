"""Candidate items of a request: the active items under the requested units (the recursive
SQL), cached in Redis under the catalogue version, so any change to items or the hierarchy
(API, import, psql: a trigger bumps the version) makes the cached lists unreachable."""
from __future__ import annotations

import hashlib
import json
import logging

import redis

from app import catalog
from app import queries as q

log = logging.getLogger("adaptrec.candidates")
TTL_S = 3600


def catalog_version(conn) -> int:
    return q.fetch_one(conn, "catalog_version")["version"]


def items_under(conn, cache, unit_ids: list[str]) -> tuple[list[str], int]:
    """Active item ids under the units, each once; and the catalogue version they belong to."""
    version = catalog_version(conn)
    digest = hashlib.sha1(json.dumps(sorted(set(unit_ids))).encode()).hexdigest()
    key = cache.key("cand", str(version), digest)
    try:
        raw = cache.client.get(key)
        if raw is not None:
            return json.loads(raw), version
    except (redis.RedisError, OSError) as exc:
        log.warning("candidate cache unavailable: %s", exc)
        return catalog.items_under_units(conn, unit_ids), version
    items = catalog.items_under_units(conn, unit_ids)
    try:
        cache.client.set(key, json.dumps(items), ex=TTL_S)
    except (redis.RedisError, OSError) as exc:
        log.warning("candidate cache write failed: %s", exc)
    return items, version
