"""Rate-limit leases against a real Redis: never more than the limit per second across workers,
few round trips, exact for small limits."""
from __future__ import annotations

import uuid

from app.access.ratelimit import RateLimiter, lease_size
from app.infra.cache import Cache


def test_leases_never_admit_more_than_the_limit_across_workers(redis_url):
    cache = Cache(redis_url, f"rltest-{uuid.uuid4().hex[:8]}:")
    workers = [RateLimiter(cache) for _ in range(3)]
    now = 1_700_000_000.25
    allowed = sum(workers[i % 3].check("k1", 1000, now).allowed for i in range(1500))
    assert 1000 - 3 * (lease_size(1000) - 1) <= allowed <= 1000
    assert int(cache.client.get(cache.key("rl", "k1", "1700000000"))) >= 1000   # every lease was counted
    assert workers[0].check("k1", 1000, now + 1).allowed  # a new second, a new allowance


def test_a_lease_saves_round_trips_and_a_small_limit_is_exact(redis_url):
    cache = Cache(redis_url, f"rltest-{uuid.uuid4().hex[:8]}:")
    limiter = RateLimiter(cache)
    calls = []
    real = cache.client.pipeline
    cache.client.pipeline = lambda **kw: calls.append(1) or real(**kw)
    now = 1_700_000_100.5
    assert all(limiter.check("k2", 1000, now).allowed for _ in range(100))
    assert len(calls) == 10   # leases of 10
    decisions = [limiter.check("k3", 5, now) for _ in range(8)]
    assert [d.allowed for d in decisions] == [True] * 5 + [False] * 3
    assert decisions[-1].retry_after_s == 1 and decisions[-1].remaining == 0


def test_without_redis_requests_are_let_through_unchecked():
    limiter = RateLimiter(Cache("redis://127.0.0.1:1/0", "x:"))
    decision = limiter.check("k", 10)
    assert decision.allowed and not decision.checked
    assert RateLimiter(Cache("redis://127.0.0.1:1/0", "x:")).check("k", 0).allowed  # 0: unlimited, no call
