"""The cached learner history never silently misses an acknowledged event, even when Redis kept
its data but could not be reached while the event was ingested."""
from __future__ import annotations

from app.catalogue import history as hist
from app.catalogue.ingest import record_interactions
from app.catalogue.records import Interaction
from app.infra.cache import Cache


def ingest(conn, cache, event_id):
    event = Interaction(event_id=event_id, user_id="u1", item_id="i1", kind="attempt", outcome=1)
    record_interactions(conn, "default", cache, [event])


def test_a_list_cached_before_an_unreachable_ingest_is_dropped_once_redis_answers(conn, redis_url, redis_prefix):
    with conn, conn.cursor() as cur:
        cur.execute("INSERT INTO items (item_id) VALUES ('i1')")
    up = Cache(redis_url, redis_prefix + "stale:")
    down = Cache("redis://127.0.0.1:1/0", redis_prefix + "stale:")  # same keys, Redis unreachable
    try:
        ingest(conn, up, "e1")
        events, source = hist.recent(conn, "default", up, "u1")
        assert len(events) == 1 and source == "postgres"
        assert len(hist.recent(conn, "default", up, "u1")[0]) == 1  # now cached in Redis

        ingest(conn, down, "e2")  # stored in Postgres; the cached list could not be touched

        events, source = hist.recent(conn, "default", up, "u1")
        assert len(events) == 2 and source == "postgres"  # the stale list was dropped, not served
        assert hist.recent(conn, "default", up, "u1") == (events, "redis")
        assert not hist._stale
    finally:
        up.client.delete(*up.client.keys(redis_prefix + "stale:*") or ["none"])
        up.close()
        down.close()


def test_a_new_learner_marked_without_history_is_not_stuck_empty_after_an_outage(conn, redis_url, redis_prefix):
    with conn, conn.cursor() as cur:
        cur.execute("INSERT INTO items (item_id) VALUES ('i1')")
    up = Cache(redis_url, redis_prefix + "stale2:")
    down = Cache("redis://127.0.0.1:1/0", redis_prefix + "stale2:")
    try:
        assert hist.recent(conn, "default", up, "u1") == ([], "postgres")
        assert hist.recent(conn, "default", up, "u1") == ([], "redis")  # "no history" is cached too

        ingest(conn, down, "e1")
        assert hist.recent(conn, "default", down, "u1")[1] == "unavailable"

        events, source = hist.recent(conn, "default", up, "u1")
        assert len(events) == 1 and source == "postgres"
        assert not hist._stale
    finally:
        up.client.delete(*up.client.keys(redis_prefix + "stale2:*") or ["none"])
        up.close()
        down.close()
