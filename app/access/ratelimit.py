"""Per-key rate limits in Redis: a counter per key and second, shared by every worker and replica.

A fixed one-second window is enough for a backend caller: the limit is a guard against runaway
clients, not billing. So that a request does not pay a Redis round trip, each worker takes the
second's allowance in leases: INCRBY reserves `lease` requests at once (a hundredth of the limit,
at least 1) and the worker spends them locally; only when its lease runs out does it ask again.
The counter therefore never admits more than the limit in a second, across every worker and
replica; a key can be refused a little early, by at most (lease - 1) unused requests per worker
and second (10 per worker at the default 1,000/s). A limit under 100/s has leases of 1: exact.
Redis is a cache here too: when it does not answer, requests are let through (and counted in
/metrics) rather than refused.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import redis

if TYPE_CHECKING:
    from app.infra.cache import Cache

log = logging.getLogger("adaptrec.ratelimit")
LEASE_FRACTION = 100   # a lease is limit // LEASE_FRACTION requests (at least 1)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    retry_after_s: int
    checked: bool = True  # False when Redis did not answer and the request was let through


def lease_size(limit_per_s: int) -> int:
    return max(1, limit_per_s // LEASE_FRACTION)


class RateLimiter:
    """One worker's leases, per key, of the current second."""

    def __init__(self, cache: Cache):
        self.cache = cache
        self._leases: dict[str, list[int]] = {}   # key id -> [second, requests left in the lease, counter]
        self._lock = threading.Lock()

    def check(self, key_id: str, limit_per_s: int, now: float | None = None) -> Decision:
        """Count one request of `key_id` in the current second; refuse it past `limit_per_s`.
        A limit of 0 means unlimited (no Redis call)."""
        if limit_per_s <= 0:
            return Decision(True, 0, 0, 0)
        second = int(time.time() if now is None else now)
        with self._lock:
            lease = self._leases.get(key_id)
            if lease is not None and lease[0] == second and lease[1] > 0:
                lease[1] -= 1
                return Decision(True, limit_per_s, max(0, limit_per_s - lease[2]) + lease[1], 1)
        size = lease_size(limit_per_s)
        counter = self.cache.key("rl", key_id, str(second))
        try:
            pipe = self.cache.client.pipeline(transaction=False)
            pipe.incrby(counter, size)
            pipe.expire(counter, 2)
            reserved, _ = pipe.execute()
        except (redis.RedisError, OSError) as exc:
            log.warning("rate limit not checked, redis unavailable: %s", exc)
            return Decision(True, limit_per_s, limit_per_s, 0, checked=False)
        # This lease covers requests reserved - size + 1 ... reserved; those above the limit are refused.
        granted = min(size, limit_per_s - (reserved - size))
        if granted <= 0:
            return Decision(False, limit_per_s, 0, 1)
        with self._lock:
            self._leases[key_id] = [second, granted - 1, reserved]
            if len(self._leases) > 10_000:  # keys of past seconds: drop them
                self._leases = {k: v for k, v in self._leases.items() if v[0] == second}
        return Decision(True, limit_per_s, max(0, limit_per_s - reserved) + granted - 1, 1)

