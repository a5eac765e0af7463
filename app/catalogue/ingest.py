"""Event ingest: store interactions exactly once per learner and event_id, then keep the learners' cached
histories current. `record_interactions` is the one way in (the API and the benches call it).

Unknown items are refused (the catalogue must know them); unknown users are created, because
a learner first appears with their first attempt.
"""
from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from app.catalogue import history as hist
from app.catalogue.records import Interaction
from app.errors import UnknownIds
from app.infra import queries as q

if TYPE_CHECKING:
    from psycopg2.extensions import connection as Connection

    from app.infra.cache import Cache


def record_interactions(conn: Connection, tenant: str, cache: Cache, events: list[Interaction],
                        now: datetime | None = None) -> list[tuple[str, str]]:
    """Store `events` in one transaction, and once it has committed, append the new ones to each
    learner's cached history so the very next recommendation sees them. Returns
    (event_id, "created" | "duplicate") per event, in order."""
    now = now or datetime.now(UTC)
    with conn:
        results = ingest_interactions(conn, tenant, events, now=now)
    record_in_cache(cache, tenant, events, results, now)
    return results


def ingest_interactions(conn: Connection, tenant: str, events: list[Interaction],
                        now: datetime | None = None, check_items: bool = True) -> list[tuple[str, str]]:
    """Store `events`; returns (event_id, "created" | "duplicate") per event, in order. check_items:
    refuse unknown items by name (UnknownIds); off for a caller that has just read or made them."""
    now = now or datetime.now(UTC)
    event_ids = [e.event_id or f"srv-{uuid.uuid4()}" for e in events]
    if check_items:
        wanted = list(dict.fromkeys(e.item_id for e in events))
        found = {r["id"] for r in q.fetch_all(conn, "existing_items", tenant=tenant, ids=wanted)}
        missing = [i for i in wanted if i not in found]
        if missing:
            raise UnknownIds("item_id", missing)
    q.execute(conn, "ensure_users", tenant=tenant, user_ids=[e.user_id for e in events])
    created = {
        (r["user_id"], r["event_id"])
        for r in q.fetch_all(
            conn, "insert_interactions", tenant=tenant,
            event_ids=event_ids,
            user_ids=[e.user_id for e in events],
            item_ids=[e.item_id for e in events],
            kinds=[e.kind for e in events],
            outcomes=[e.outcome for e in events],
            vals=[e.value for e in events],
            durations=[e.duration_ms for e in events],
            responses=[json.dumps(e.response) if e.response is not None else None for e in events],
            occurred=[e.occurred_at or now for e in events],
        )
    }
    results, seen = [], set()
    for event, eid in zip(events, event_ids):
        # the first occurrence of a learner's new id is the one stored; a repeat in the batch is a duplicate
        key = (event.user_id, eid)
        status = "created" if key in created and key not in seen else "duplicate"
        seen.add(key)
        results.append((eid, status))
    return results


def record_in_cache(cache: Cache, tenant: str, events: list[Interaction], results: list[tuple[str, str]],
                    now: datetime) -> None:
    """After the ingest transaction commits: append the new events to each learner's cached
    history, so the very next recommendation sees them."""
    created: dict[str, list[hist.Event]] = {}
    for event, (_, status) in zip(events, results):
        if status == "created":
            created.setdefault(event.user_id, []).append(hist.Event(
                event.item_id, event.kind, event.outcome, event.value, event.occurred_at or now))
    if created:
        hist.record(cache, tenant, created)
