"""xAPI statements in: validated statements (app.xapi.statements) recorded as interactions under the
tenant's rules (app.xapi.mapping), once per statement id, in one transaction with the caller's.
`record_statements` is the API's way in (it also updates the learners' cached histories);
`ingest_statements` the importer's.

A statement already received is a duplicate when it has the same content (its digest), a conflict
(409, nothing of the batch stored) when it has other content. A valid statement that cannot be
mapped is kept in xapi_statements with the reason, never dropped.
"""
from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from app.catalogue.ingest import ingest_interactions, record_in_cache
from app.catalogue.records import Interaction
from app.errors import InputError
from app.infra import queries as q
from app.xapi import mapping
from app.xapi.statements import digest, storable

if TYPE_CHECKING:
    from psycopg2.extensions import connection as Connection

    from app.infra.cache import Cache


class StatementConflict(InputError):
    """A statement id already received with other content (the spec's 409 Conflict)."""

    status = 409

    def __init__(self, index: int | None, statement_id: str):
        at = f"statement {index}" if index is not None else "the statement"
        super().__init__(f"{at}: id {statement_id} was already received with other content; a statement is "
                         f"never changed (send a new id, or void the old one)",
                         [{"field": f"[{index}].id" if index is not None else "id", "message": "conflict"}])
        self.statement_id = statement_id
        self.index = index


class ActivityMap:
    """Which item each activity IRI is recorded on, per tenant, as one worker last read it (for
    `ttl_s`), so a batch of known activities costs no lookup. The map only grows (a mapped activity
    keeps its item; migration 012), so an entry is stale only when its item or tenant has been
    deleted since: the insert then fails on the foreign key (409, retry) for at most `ttl_s`."""

    def __init__(self, ttl_s: float = 30.0, max_entries: int = 100_000):
        self.ttl_s, self.max_entries = ttl_s, max_entries
        self._items: dict[tuple[str, str], tuple[float, str]] = {}
        self._lock = threading.Lock()

    def get(self, tenant: str, iris: list[str]) -> dict[str, str]:
        now = time.monotonic()
        with self._lock:
            hits = ((iri, self._items.get((tenant, iri))) for iri in iris)
            return {iri: hit[1] for iri, hit in hits if hit is not None and hit[0] > now}

    def put(self, tenant: str, items: dict[str, str]) -> None:
        expires = time.monotonic() + self.ttl_s
        with self._lock:
            if len(self._items) + len(items) > self.max_entries:   # IRIs sprayed by a caller: start over
                self._items.clear()
            self._items.update(((tenant, iri), (expires, item)) for iri, item in items.items())


@dataclass
class Ingested:
    """Per statement, in the order sent: its id and what became of it (recorded: a new interaction;
    duplicate: received before; unmappable: kept with `reasons[k]`)."""

    ids: list[str] = field(default_factory=list)
    status: list[str] = field(default_factory=list)
    reasons: list[str | None] = field(default_factory=list)
    events: list[Interaction] = field(default_factory=list)          # the new interactions ...
    results: list[tuple[str, str]] = field(default_factory=list)     # ... and record_interactions' statuses
    created: dict[str, int] = field(default_factory=dict)            # items and units created on first sight


def record_statements(conn: Connection, tenant: str, cache: Cache, statements: list[dict], rules: mapping.Rules,
                      now: datetime | None = None, listed: bool = True,
                      activities: ActivityMap | None = None) -> Ingested:
    """Store `statements` (valid) in one transaction; once committed, the learners' cached
    histories get the new interactions, so the next recommendation sees them."""
    now = now or datetime.now(UTC)
    with conn:
        done = ingest_statements(conn, tenant, statements, rules, now, listed=listed, activities=activities)
    record_in_cache(cache, tenant, done.events, done.results, now)
    return done


def ingest_statements(conn: Connection, tenant: str, statements: list[dict], rules: mapping.Rules,
                      now: datetime | None = None, listed: bool = True,
                      activities: ActivityMap | None = None) -> Ingested:
    """Record `statements` (already valid) in the caller's transaction. StatementConflict when one
    re-uses a received id with other content (the caller's rollback then undoes the rest).
    `listed`: the statements came as a list (errors name their index). `activities`: a worker's
    cache of the activity map (the API's); the items it names are not looked up.

    For a batch of activities the worker remembers, three round trips, as the native ingest: the
    statements' rows (ON CONFLICT DO NOTHING: the rows that come back are the new statements; the
    others are looked up, rarely, to tell a resend from a conflict), then the users and the
    interactions of the new mapped ones; one more to read the activities it does not remember."""
    now = now or datetime.now(UTC)
    ids = [str(s["id"]).lower() if "id" in s else str(uuid.uuid4()) for s in statements]
    digests = [digest(s) for s in statements]
    drafts = [mapping.draft(s, sid, rules, now) for s, sid in zip(statements, ids)]
    created: dict[str, int] = {}
    items = _items_of(conn, tenant, drafts, rules, created, activities)
    for k, d in enumerate(drafts):
        if d.reason is None and d.activity.iri not in items:
            drafts[k] = d.unmappable("unknown_activity", f"the activity {d.activity.iri} is not mapped to an item "
                                                         f"and the tenant does not create items on first sight")
    inserted = {(r["user_id"], r["statement_id"]) for r in q.fetch_all(
        conn, "insert_statements", tenant=tenant,
        user_ids=[d.learner for d in drafts], statement_ids=ids, digests=digests, verbs=[d.verb for d in drafts],
        activity_ids=[d.activity.iri if d.activity else None for d in drafts],
        item_ids=[items[d.activity.iri] if d.reason is None else None for d in drafts],
        reasons=[d.reason for d in drafts], details=[d.detail for d in drafts],
        statements=[json.dumps(storable(s), ensure_ascii=False) if d.reason else None
                    for s, d in zip(statements, drafts)])}
    old = [k for k, d in enumerate(drafts) if (d.learner, ids[k]) not in inserted]
    if old:
        known = {(r["user_id"], r["statement_id"]): r["digest"] for r in q.fetch_all(
            conn, "known_statements", tenant=tenant, user_ids=[drafts[k].learner for k in old],
            statement_ids=[ids[k] for k in old])}
        for k in old:
            if known.get((drafts[k].learner, ids[k])) != digests[k]:
                raise StatementConflict(k if listed else None, ids[k])
    fresh = set(range(len(drafts))) - set(old)
    mapped = [k for k in sorted(fresh) if drafts[k].reason is None]
    events = [Interaction.model_construct(
        event_id=ids[k], user_id=drafts[k].learner, item_id=items[drafts[k].activity.iri], kind=drafts[k].kind,
        outcome=drafts[k].outcome, value=drafts[k].value, duration_ms=drafts[k].duration_ms,
        response=drafts[k].response, occurred_at=drafts[k].occurred_at) for k in mapped]
    # the items were just looked up or created in this transaction: not checked again
    results = ingest_interactions(conn, tenant, events, now=now, check_items=False) if events else []
    recorded = {eid for eid, status in results if status == "created"}
    out = Ingested(ids=ids, events=events, results=results, created=created)
    for k, d in enumerate(drafts):
        if k not in fresh:
            out.status.append("duplicate")
        elif d.reason is not None:
            out.status.append("unmappable")
        else:
            out.status.append("recorded" if ids[k] in recorded else "duplicate")
        out.reasons.append(d.reason if k in fresh else None)
    return out


def _items_of(conn: Connection, tenant: str, drafts: list[mapping.Draft], rules: mapping.Rules,
              created: dict[str, int], activities: ActivityMap | None = None) -> dict[str, str]:
    """activity IRI -> item id for the mappable drafts' activities: the tenant's map (or an item
    whose id is the IRI); when the tenant allows it, the others created now, in the units of their
    statements' parent and grouping activities."""
    iris = list(dict.fromkeys(d.activity.iri for d in drafts if d.reason is None))
    if not iris:
        return {}
    items = activities.get(tenant, iris) if activities is not None else {}
    unread = [i for i in iris if i not in items]
    if unread:
        items.update((r["iri"], r["item_id"]) for r in q.fetch_all(conn, "activity_items", tenant=tenant, iris=unread))
        if activities is not None:
            # remembered once the transaction has read them; one that rolls back re-reads next time
            activities.put(tenant, {i: items[i] for i in unread if i in items})
    missing = [i for i in iris if i not in items]
    if missing:   # not in the map: an item named as the IRI (mapped from now on), else (when allowed) created now
        named = {r["iri"]: r["item_id"] for r in q.fetch_all(conn, "items_named_as_activities", tenant=tenant,
                                                               iris=missing)}
        if named:
            q.execute(conn, "insert_activity_items", tenant=tenant, iris=list(named), item_ids=list(named.values()))
            items.update(named)
    missing = {i for i in iris if i not in items}
    if not missing or not rules.create_items:
        return items
    new = mapping.new_catalogue(drafts, missing)
    items_new, units_new = list(new.items.values()), list(new.units.values())
    created["items"] = q.execute(conn, "insert_new_items", tenant=tenant, item_ids=[a.item_id for a in items_new],
                                 kinds=[a.kind for a in items_new], titles=[a.name for a in items_new],
                                 attrs=[json.dumps(a.attrs()) for a in items_new])
    if units_new:
        created["units"] = q.execute(conn, "insert_new_units", tenant=tenant, unit_ids=[a.item_id for a in units_new],
                                     names=[a.name for a in units_new], kinds=[a.kind for a in units_new],
                                     attrs=[json.dumps(a.attrs()) for a in units_new])
    if new.unit_children:
        q.execute(conn, "insert_children", tenant=tenant, parents=[p for p, _ in new.unit_children],
                  children=[c for _, c in new.unit_children])
    if new.unit_items:
        q.execute(conn, "add_unit_items", tenant=tenant, unit_ids=[u for u, _ in new.unit_items],
                  item_ids=[i for _, i in new.unit_items])
    q.execute(conn, "insert_activity_items", tenant=tenant, iris=list(new.items),
              item_ids=[a.item_id for a in new.items.values()])
    return {**items, **{iri: a.item_id for iri, a in new.items.items()}}
