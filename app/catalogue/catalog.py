"""Catalogue writes and reads: users, items, units and the unit hierarchy.

Functions take a connection and plain records (app.catalogue.records), never commit, and raise
app.errors on bad references, so the caller's transaction rolls everything back.
"""
from __future__ import annotations

import json
from typing import TYPE_CHECKING

from app.catalogue.records import Item, Unit, User
from app.errors import InputError, NotFound, UnknownIds
from app.infra import queries as q

if TYPE_CHECKING:
    from psycopg2.extensions import connection as Connection


def _missing(conn: Connection, tenant: str, query: str, ids: list[str]) -> list[str]:
    wanted = list(dict.fromkeys(ids))
    if not wanted:
        return []
    found = {row["id"] for row in q.fetch_all(conn, query, tenant=tenant, ids=wanted)}
    return [i for i in wanted if i not in found]


def upsert_users(conn: Connection, tenant: str, users: list[User]) -> int:
    users = list({u.user_id: u for u in users}.values())  # the last of repeated ids wins
    q.execute(conn, "upsert_users", tenant=tenant, user_ids=[u.user_id for u in users],
              attrs=[json.dumps(u.attrs) for u in users])
    return len(users)


def upsert_items(conn: Connection, tenant: str, items: list[Item]) -> int:
    items = list({i.item_id: i for i in items}.values())
    q.execute(conn, "upsert_items", tenant=tenant,
              item_ids=[i.item_id for i in items], kinds=[i.kind for i in items],
              titles=[i.title for i in items], bodies=[i.body for i in items],
              attrs=[json.dumps(i.attrs) for i in items], actives=[i.active for i in items])
    with_units = [i for i in items if i.units is not None]
    if with_units:
        missing = _missing(conn, tenant, "existing_units", [u for i in with_units for u in i.units])
        if missing:
            raise UnknownIds("units", missing)
        q.execute(conn, "delete_item_units", tenant=tenant, item_ids=[i.item_id for i in with_units])
        pairs = [(u, i.item_id) for i in with_units for u in dict.fromkeys(i.units)]
        q.execute(conn, "insert_unit_items", tenant=tenant, unit_ids=[p[0] for p in pairs],
                  item_ids=[p[1] for p in pairs], positions=[None] * len(pairs))
    return len(items)


def upsert_units(conn: Connection, tenant: str, units: list[Unit]) -> int:
    """Create or update units; children and items, when given, replace the current lists.
    Children may name units created in the same call. A change that would close a cycle in
    the hierarchy is refused."""
    units = list({u.unit_id: u for u in units}.values())
    q.execute(conn, "upsert_units", tenant=tenant, unit_ids=[u.unit_id for u in units], names=[u.name for u in units],
              kinds=[u.kind for u in units], attrs=[json.dumps(u.attrs) for u in units])

    with_children = [u for u in units if u.children is not None]
    if with_children:
        missing = _missing(conn, tenant, "existing_units", [c for u in with_children for c in u.children])
        if missing:
            raise UnknownIds("children", missing)
        selfish = [u.unit_id for u in with_children if u.unit_id in u.children]
        if selfish:
            raise InputError(f"unit {selfish[0]!r} lists itself as a child",
                             [{"field": "children", "message": "a unit cannot be its own child"}])
        q.execute(conn, "delete_children", tenant=tenant, unit_ids=[u.unit_id for u in with_children])
        edges = [(u.unit_id, c) for u in with_children for c in dict.fromkeys(u.children)]
        q.execute(conn, "insert_children", tenant=tenant, parents=[e[0] for e in edges], children=[e[1] for e in edges])
        cycle = q.fetch_one(conn, "cycle_through_units", tenant=tenant, unit_ids=[u.unit_id for u in with_children])
        if cycle:
            raise InputError(
                f"these children would put unit {cycle['unit_id']!r} below itself; the hierarchy must stay acyclic",
                [{"field": "children", "message": f"cycle through {cycle['unit_id']!r}"}])

    with_items = [u for u in units if u.items is not None]
    if with_items:
        missing = _missing(conn, tenant, "existing_items", [i for u in with_items for i in u.items])
        if missing:
            raise UnknownIds("items", missing)
        q.execute(conn, "delete_unit_items", tenant=tenant, unit_ids=[u.unit_id for u in with_items])
        rows = [(u.unit_id, i, pos) for u in with_items for pos, i in enumerate(dict.fromkeys(u.items))]
        q.execute(conn, "insert_unit_items", tenant=tenant, unit_ids=[r[0] for r in rows],
                  item_ids=[r[1] for r in rows],
                  positions=[r[2] for r in rows])
    return len(units)


def deactivate_item(conn: Connection, tenant: str, item_id: str) -> None:
    if not q.fetch_one(conn, "deactivate_item", tenant=tenant, item_id=item_id):
        raise NotFound(f"no item {item_id!r}")


def get_user(conn: Connection, tenant: str, user_id: str) -> dict:
    row = q.fetch_one(conn, "get_user", tenant=tenant, user_id=user_id)
    if row is None:
        raise NotFound(f"no user {user_id!r}")
    return row


def get_item(conn: Connection, tenant: str, item_id: str) -> dict:
    row = q.fetch_one(conn, "get_item", tenant=tenant, item_id=item_id)
    if row is None:
        raise NotFound(f"no item {item_id!r}")
    return row


def get_unit(conn: Connection, tenant: str, unit_id: str) -> dict:
    row = q.fetch_one(conn, "get_unit", tenant=tenant, unit_id=unit_id)
    if row is None:
        raise NotFound(f"no unit {unit_id!r}")
    row["items_under"] = len(items_under_units(conn, tenant, [unit_id]))
    return row


def items_under_units(conn: Connection, tenant: str, unit_ids: list[str]) -> list[str]:
    """Active item ids under the given units, each once, through the unit DAG."""
    return [r["item_id"] for r in q.fetch_all(conn, "items_under_units", tenant=tenant, unit_ids=list(unit_ids))]
