"""Redis stopped under a running service: requests go on from Postgres, the cache refills."""
from __future__ import annotations

import json
import time
import uuid

import redis

from tests.slow.faults.stack import PREFIX, Stack, call, recommend, some_items, wait_until


def test_redis_stopped_requests_keep_succeeding_and_the_cache_refills(stack):
    cache = redis.Redis.from_url(stack.redis_url)
    try:
        _redis_outage(stack, cache)
    finally:
        cache.close()


def _redis_outage(stack: Stack, cache: redis.Redis) -> None:
    learner, newcomer = "fault-redis-learner", f"fault-redis-new-{uuid.uuid4().hex[:6]}"
    item = some_items(stack, 1)[0]
    assert recommend(stack, learner).status == 200
    key = PREFIX + "hist:default:" + learner   # the history of tenant default's learner
    assert cache.exists(key) or cache.exists(key + ":empty")

    stack.servers.stop_redis()
    try:
        down = [recommend(stack, learner) for _ in range(10)]
        ingest = call(stack, "POST", "/v1/interactions", {"event_id": f"redis-down-{newcomer}", "user_id": newcomer,
                                                          "item_id": item, "kind": "attempt", "outcome": 1})
        down.append(ingest)
        down.append(recommend(stack, newcomer))
        ready = call(stack, "GET", "/readyz")
    finally:
        stack.servers.start_redis()
    assert [a.status for a in down] == [200] * 10 + [201, 200], [(a.status, a.body) for a in down]
    assert down[-1].body["history_rows"] == 1  # served from Postgres, with the event just stored
    assert ready.status == 200 and ready.body["status"] == "degraded" and ready.body["redis"] == "down"
    slowest = max(a.seconds for a in down)
    assert slowest < 1.0, f"a request took {slowest:.2f} s while Redis was down"

    assert not list(cache.scan_iter(match=PREFIX + "hist:*"))  # a new Redis starts empty
    key = PREFIX + "hist:default:" + newcomer

    def refilled() -> bool:
        answer = recommend(stack, newcomer)
        assert answer.status == 200 and answer.body["history_rows"] == 1
        return bool(cache.exists(key))

    started = time.monotonic()
    assert wait_until(refilled, 5, step=0.1), "the history cache was not refilled after Redis returned"
    refill_s = time.monotonic() - started
    assert json.loads(cache.lindex(key, 0))[0] == item  # refilled from Postgres: the event is there
    assert call(stack, "GET", "/readyz").body["status"] == "ready"
    print(f"\nredis down: {len(down)} requests all 2xx, slowest {slowest * 1000:.0f} ms; "
          f"history cached again {refill_s * 1000:.0f} ms after Redis was back")
