"""A learner's recent interactions: a Redis list per user kept current on every ingest, with
Postgres behind it on a miss (and whenever Redis is down).

Consistency: ingest bumps a per-user generation counter after its transaction commits, then
appends to the list only if the list exists. A reader that misses fills the list from Postgres
inside WATCH on that counter, so a fill that raced an ingest is discarded instead of caching a
history without the new event. The answer itself always comes from Postgres on a miss.
"""
from __future__ import annotations

import json
import logging
import threading
from datetime import datetime
from typing import TYPE_CHECKING, NamedTuple

import redis

from app.infra import queries as q

if TYPE_CHECKING:
    from psycopg2.extensions import connection as Connection

    from app.infra.cache import Cache

log = logging.getLogger("adaptrec.history")
KEEP = 500            # interactions cached per user
TTL_S = 24 * 3600
STALE_MAX = 100_000   # users whose cached list this worker must drop once Redis answers again

# Users whose ingest could not reach Redis: their cached lists (if Redis kept them) lack events,
# so they are dropped at the next Redis call that works. Per worker process.
_stale: set[tuple[str, str, str]] = set()   # (cache prefix, tenant, user)
_stale_lock = threading.Lock()


class Event(NamedTuple):
    # A NamedTuple, not a dataclass: a request decodes up to KEEP of these, and building a
    # tuple costs a fraction of a frozen dataclass.
    item_id: str
    kind: str
    outcome: int | None
    value: float | None
    occurred_at: datetime


def _encode(e: Event) -> str:
    """A cache entry: [item_id, kind, outcome, value, occurred_at (ISO 8601)], the same JSON
    Postgres writes for a miss (query user_recent_interactions)."""
    return json.dumps([e.item_id, e.kind, e.outcome, e.value, e.occurred_at.isoformat()])


def _decode_all(raw: list[bytes] | list[str]) -> list[Event]:
    """Decode a cached list in one json.loads (one call per entry cost ~1 ms per request)."""
    fromiso = datetime.fromisoformat
    joined = (b"[" + b",".join(raw) + b"]") if raw and isinstance(raw[0], bytes) else "[" + ",".join(raw) + "]"
    return [Event(i, k, o, v, fromiso(at)) for i, k, o, v, at in json.loads(joined)]


def _keys(cache: Cache, tenant: str, user_id: str) -> tuple[str, str]:
    return cache.key("hist", tenant, user_id), cache.key("histgen", tenant, user_id)


def recent(conn: Connection, tenant: str, cache: Cache, user_id: str, limit: int = KEEP) -> tuple[list[Event], str]:
    """Up to `limit` most recent events, newest first, and where they came from: redis, postgres
    (a cache miss, now filled) or unavailable (Redis did not answer; read from Postgres)."""
    list_key, gen_key = _keys(cache, tenant, user_id)
    try:
        if _stale:
            _drop_stale(cache)
        raw = cache.client.lrange(list_key, 0, limit - 1)
        if raw:
            return _decode_all(raw), "redis"
        if cache.client.exists(list_key + ":empty"):
            return [], "redis"
    except (redis.RedisError, OSError) as exc:
        log.warning("history cache unavailable: %s", exc)
        return _from_postgres(conn, tenant, user_id, limit), "unavailable"
    entries = _entries(conn, tenant, user_id, limit)
    _fill(cache, list_key, gen_key, entries)
    return _decode_all(entries), "postgres"


def _entries(conn: Connection, tenant: str, user_id: str, limit: int) -> list[str]:
    """The user's recent interactions from Postgres, already encoded as cache entries (no row
    objects built, nothing encoded here: a miss on a long history stays cheap)."""
    return [r[0] for r in q.fetch_tuples(conn, "user_recent_interactions", tenant=tenant, user_id=user_id,
                                         limit=limit)]


def _from_postgres(conn: Connection, tenant: str, user_id: str, limit: int) -> list[Event]:
    return _decode_all(_entries(conn, tenant, user_id, limit))


def from_postgres(conn: Connection, tenant: str, user_id: str, limit: int = KEEP) -> list[Event]:
    """The user's `limit` most recent events, newest first, from Postgres without the cache (a job
    walking every learner must not evict the day's learners from Redis)."""
    return _from_postgres(conn, tenant, user_id, limit)


def from_postgres_many(conn: Connection, tenant: str, user_ids: list[str], limit: int = KEEP
                       ) -> dict[str, list[Event]]:
    """from_postgres of each of `user_ids` in one query (a job walking learners in batches)."""
    return {user_id: _decode_all(entries) for user_id, entries in
            q.fetch_tuples(conn, "users_recent_interactions", tenant=tenant, user_ids=list(user_ids), limit=limit)}


def _fill(cache: Cache, list_key: str, gen_key: str, entries: list[str]) -> None:
    try:
        with cache.client.pipeline() as pipe:
            pipe.watch(gen_key)
            pipe.multi()
            pipe.delete(list_key)
            if entries:
                pipe.rpush(list_key, *entries[:KEEP])
                pipe.expire(list_key, TTL_S)
            else:  # remember "no history" too, so new learners do not hit Postgres every time
                pipe.set(list_key + ":empty", 1, ex=TTL_S)
            pipe.execute()
    except redis.WatchError:
        pass  # an ingest for this user landed meanwhile; the next read fills again
    except (redis.RedisError, OSError) as exc:
        log.warning("history cache fill failed: %s", exc)


def record(cache: Cache, tenant: str, user_events: dict[str, list[Event]]) -> None:
    """After an ingest commits: bump each user's generation and append to their cached list."""
    try:
        if _stale:
            _drop_stale(cache)
        with cache.client.pipeline(transaction=False) as pipe:
            for user_id, events in user_events.items():
                list_key, gen_key = _keys(cache, tenant, user_id)
                pipe.incr(gen_key)
                pipe.expire(gen_key, TTL_S)
                pipe.delete(list_key + ":empty")
                for e in sorted(events, key=lambda e: e.occurred_at):
                    pipe.lpushx(list_key, _encode(e))
                pipe.ltrim(list_key, 0, KEEP - 1)
            pipe.execute()
    except (redis.RedisError, OSError) as exc:
        log.warning("history cache update failed, dropping the users' cached lists: %s", exc)
        _forget(cache, tenant, list(user_events))


def _invalidate(cache: Cache, tenant: str, user_ids: list[str]) -> None:
    """Drop the users' cached lists and "no history" markers, and bump their generation so a
    fill that read Postgres before now cannot write an old list afterwards."""
    with cache.client.pipeline(transaction=False) as pipe:
        for user_id in user_ids:
            list_key, gen_key = _keys(cache, tenant, user_id)
            pipe.delete(list_key, list_key + ":empty")
            pipe.incr(gen_key)
            pipe.expire(gen_key, TTL_S)
        pipe.execute()


def _forget(cache: Cache, tenant: str, user_ids: list[str]) -> None:
    try:
        _invalidate(cache, tenant, user_ids)
    except (redis.RedisError, OSError):
        # Redis is unreachable: drop the lists as soon as it answers again (a Redis that kept its
        # data would otherwise serve these learners a history without the new events).
        with _stale_lock:
            if len(_stale) + len(user_ids) > STALE_MAX:
                log.error("too many learners with possibly stale cached histories; "
                          "run FLUSHDB on the cache Redis to be sure")
                _stale.clear()
            _stale.update((cache.prefix, tenant, u) for u in user_ids)


def _drop_stale(cache: Cache) -> None:
    """Invalidate the users remembered by _forget (raises if Redis still does not answer)."""
    with _stale_lock:
        pending = [(t, u) for prefix, t, u in _stale if prefix == cache.prefix]
    for tenant in {t for t, _ in pending}:
        users = [u for t, u in pending if t == tenant]
        _invalidate(cache, tenant, users)
        with _stale_lock:
            _stale.difference_update((cache.prefix, tenant, u) for u in users)
