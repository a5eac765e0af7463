"""Per-key rate limits in Redis: a counter per key and second, shared by every worker and replica.

A fixed one-second window (INCR + EXPIRE in one round trip) is enough for a backend caller:
the limit is a guard against runaway clients, not billing. Redis is a cache here too: when it
does not answer, requests are let through (and counted in /metrics) rather than refused.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import redis

if TYPE_CHECKING:
    from app.cache import Cache

log = logging.getLogger("adaptrec.ratelimit")


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    retry_after_s: int
    checked: bool = True  # False when Redis did not answer and the request was let through


def check_rate(cache: Cache, key_id: str, limit_per_s: int, now: float | None = None) -> Decision:
    """Count one request of `key_id` in the current second; refuse it past `limit_per_s`.
    A limit of 0 means unlimited (no Redis call)."""
    if limit_per_s <= 0:
        return Decision(True, 0, 0, 0)
    second = int(time.time() if now is None else now)
    counter = cache.key("rl", key_id, str(second))
    try:
        pipe = cache.client.pipeline(transaction=False)
        pipe.incr(counter)
        pipe.expire(counter, 2)
        count, _ = pipe.execute()
    except (redis.RedisError, OSError) as exc:
        log.warning("rate limit not checked, redis unavailable: %s", exc)
        return Decision(True, limit_per_s, limit_per_s, 0, checked=False)
    remaining = max(0, limit_per_s - count)
    return Decision(count <= limit_per_s, limit_per_s, remaining, 1)
