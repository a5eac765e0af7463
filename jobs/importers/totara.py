"""Totara Engage's recommender export: a folder with user_interactions.csv and, optionally,
item_data.csv and user_data.csv, imported as one unit; or Totara's nightly multi-tenant export,
tenants.csv with user_interactions_{tenant}.csv, item_data_{tenant}.csv and user_data_{tenant}.csv
per tenant (`tenant_ids`, `read(..., suffix="_3")`; jobs.importers.run_import imports each tenant
into its own adaptrec tenant).

- user_interactions: user_id, item_id, rating (0 leisurely, 1 positive), timestamp (unix).
- item_data: item_id, one-hot columns, then free text. One-hot columns named after Totara's
  components (engage_article, container_course, ...: ITEM_TYPES) give the item's kind; the
  other one-hot columns are topics (`topic_Leadership` is topic Leadership). The other columns
  are text, joined into items.body (for TF-IDF). A `type` or `item_type` column gives the kind
  too. Without either, the kind is the component the id starts with, as Totara writes ids
  (`engage_article1000`: engage_article), and the report says how many items took it from there;
  an id that starts with none is kind 'content', which Totara never asks for (the report warns
  when a tenant ends up with no item of a Totara component). Every item sits in a root unit
  `totara` (which trains the tenant's model), in a unit `component:<kind>` (the candidates of
  Totara's `item_type`; never trained itself) and in a unit `topic:<name>` per topic; the topics
  are also kept in attrs.
- user_data: user_id and metadata columns (lang, city, interests, description, ...), stored in
  users.attrs.

Interactions may name items already in the database instead of item_data.
"""
from __future__ import annotations

import re
from pathlib import Path

from app.totara.answers import component_problem
from app.totara.protocol import COMPONENT_UNIT, ITEM_TYPES, split_item_id
from jobs.importers.common import ImportFailed, Loader, check_id, column_positions, csv_rows, unix_time

DESCRIPTION = "Totara Engage export folder: user_interactions.csv, optional item_data.csv and user_data.csv"

ROOT_ID, ROOT_NAME = "totara", "Totara"
INTERACTIONS, ITEMS, USERS, TENANTS = "user_interactions", "item_data", "user_data", "tenants.csv"
TYPE_COLUMNS = ("type", "item_type")
KIND = re.compile(r"^[a-z][a-z0-9_]{0,31}$")  # as the schema's interactions.kind and the API's Kind
RATINGS = {"0": 0, "1": 1}
NO_COMPONENT = "content"   # the kind of an item whose export names no Totara component


def component_of(item_id: str) -> str | None:
    """The Totara component an item id starts with (`engage_article1000` -> engage_article), or None."""
    try:
        component, _ = split_item_id(item_id)
    except ValueError:
        return None
    return component if component in ITEM_TYPES else None


def tenant_warnings(conn, tenant: str) -> list[str]:
    """After a Totara import: a tenant with items but none of a Totara component cannot be answered by
    /user-items for any item type (app.totara.answers); the import says so."""
    problem = component_problem(conn, tenant)
    return [problem] if problem else []


def tenant_ids(folder: Path) -> list[str] | None:
    """The tenants of a multi-tenant export (tenants.csv, column `tenants` as Totara writes it, or
    `tenant`), or None for a single-folder export."""
    path = folder / TENANTS
    if not path.is_file():
        return None
    rows = csv_rows(path, False)
    _, header = next(rows, (1, None))
    names = [h.strip().lower() for h in header or []]
    col = next((c for c, n in enumerate(names) if n in ("tenants", "tenant")), None)
    if col is None:
        raise ImportFailed(path, 1, None, "the header must name a 'tenants' column (Totara's tenants.csv)")
    found = []
    for line, row in rows:
        raw = row[col].strip() if col < len(row) else ""
        if not raw.isdigit() or len(raw) > 18:
            raise ImportFailed(path, line, col + 1, f"a tenant id is a whole number (0: the site without tenants), "
                               f"got {raw!r}")
        found.append(str(int(raw)))
    if not found:
        raise ImportFailed(path, None, None, "lists no tenant")
    return list(dict.fromkeys(found))


def read(path: Path, loader: Loader, id_prefix: str = "", progress: bool = True, suffix: str = "") -> int:
    """Stage items, users and interactions of the export folder (files named with `suffix`, e.g.
    user_interactions_3.csv for "_3"); returns the rows read from all files."""
    folder = path.parent if path.is_file() else path
    interactions, items, users = (folder / f"{name}{suffix}.csv" for name in (INTERACTIONS, ITEMS, USERS))
    if not interactions.is_file():
        raise ImportFailed(interactions, None, None, f"missing: PATH must be a Totara export folder with "
                           f"{interactions.name} (and optionally {items.name}, {users.name})")
    count = 0
    if items.exists():
        count += _read_items(items, loader, id_prefix, progress, one_model=bool(suffix))
    if users.exists():
        count += _read_users(users, loader, id_prefix, progress)
    return count + _read_interactions(interactions, loader, id_prefix, progress)


def _read_interactions(path: Path, loader: Loader, prefix: str, progress: bool) -> int:
    source, add, count = str(path), loader.add_interaction, 0
    rows = csv_rows(path, progress)
    _, header = next(rows, (1, None))
    u_col, i_col, r_col, t_col = column_positions(path, header, ("user_id", "item_id", "rating", "timestamp"))
    ids: dict[str, str] = {}  # raw id -> prefixed id, so each distinct id is checked once

    def prefixed(raw: str, line: int, col: int, what: str) -> str:
        if raw not in ids:
            ids[raw] = check_id(path, line, col + 1, raw, what, prefix)
        return ids[raw]

    for line, row in rows:
        user = prefixed(row[u_col], line, u_col, "user_id")
        item = prefixed(row[i_col], line, i_col, "item_id")
        rating = RATINGS.get(row[r_col])
        if rating is None:
            raise ImportFailed(path, line, r_col + 1,
                               f"rating must be 0 (leisurely) or 1 (positive), got {row[r_col]!r}")
        stamp = row[t_col]
        add((f"totara:{user}:{item}:{stamp}", user, item, "interaction", rating, float(rating), None, None,
             unix_time(path, line, t_col + 1, stamp)), source, line)
        count += 1
    return count


def _read_items(path: Path, loader: Loader, prefix: str, progress: bool, one_model: bool = False) -> int:
    # Which columns are topics is known only after the last row, so rows are held in memory:
    # a catalogue is thousands of rows, not millions.
    rows = csv_rows(path, progress)
    _, header = next(rows, (1, None))
    id_col, = column_positions(path, header, ("item_id",))
    names = [h.strip() for h in header]
    type_col = next((c for c, n in enumerate(names) if n.lower() in TYPE_COLUMNS), None)
    items = list(rows)
    others = [c for c in range(len(names)) if c not in (id_col, type_col)]
    flags = [c for c in others if items and all(row[c] in ("0", "1") for _, row in items)]
    components = [c for c in flags if names[c] in ITEM_TYPES]   # Totara's one-hot item type
    topics = [c for c in flags if c not in components]
    texts = [c for c in others if c not in flags]

    def topic_name(c: int) -> str:
        return names[c][len("topic_"):] if names[c].startswith("topic_") and len(names[c]) > 6 else names[c]

    root = prefix + ROOT_ID
    loader.add("units", (root, ROOT_NAME, "root", {}))
    for c in topics:
        if not names[c]:
            raise ImportFailed(path, 1, c + 1, f"column {c + 1} holds topic flags (0/1) but has no name in the header")
        unit_id = check_id(path, 1, c + 1, f"topic:{topic_name(c)}", "the topic's unit id", prefix)
        # in a multi-tenant export the tenant's root model serves its topics too (Totara: one model a tenant)
        loader.add("units", (unit_id, topic_name(c), "topic", {"training": {"enabled": False}} if one_model else {}))
        loader.add("unit_children", (root, unit_id))
    kinds_seen, from_id, without = set(), 0, []
    for line, row in items:
        item_id = check_id(path, line, id_col + 1, row[id_col], "item_id", prefix)
        flagged = [names[c] for c in components if row[c] == "1"]
        if type_col is not None:
            kind = row[type_col].strip().lower()
        elif flagged:
            kind = flagged[0]
        else:   # no column says: Totara's id does (the component followed by the number)
            kind = component_of(row[id_col]) or NO_COMPONENT
            from_id += kind != NO_COMPONENT
            if kind == NO_COMPONENT:
                without.append(row[id_col])
        if not KIND.match(kind):
            raise ImportFailed(path, line, type_col + 1, "the item type must be a lower-case word (letters, digits, "
                               f"underscore; up to 32 characters), got {row[type_col]!r}")
        own = [topic_name(c) for c in topics if row[c] == "1"]
        body = " ".join(row[c].strip() for c in texts if row[c].strip()) or None
        loader.add("items", (item_id, kind, None, body, {"topics": own}, True))
        loader.add("unit_items", (root, item_id, None))
        loader.add("unit_items", (f"{prefix}{COMPONENT_UNIT}{kind}", item_id, None))
        kinds_seen.add(kind)
        for name in own:
            loader.add("unit_items", (f"{prefix}topic:{name}", item_id, None))
    for kind in sorted(kinds_seen):
        # the candidates of one item type: the root's model serves them; no model of their own
        unit_id = f"{prefix}{COMPONENT_UNIT}{kind}"
        loader.add("units", (unit_id, kind, "component", {"training": {"enabled": False}}))
        loader.add("unit_children", (root, unit_id))
    if from_id:
        loader.notes.append(f"{from_id} items took their Totara component from the id ({path.name} has no "
                            "component column for them)")
    if without and len(without) < len(items):   # none at all: tenant_warnings says so for the whole tenant
        shown = ", ".join(repr(i) for i in without[:3])
        loader.warnings.append(f"{len(without)} of the {len(items)} items of {path.name} have no Totara component "
                               f"({shown}, ...: no component column and an id that starts with none): "
                               "/user-items never recommends them")
    return len(items)


def _read_users(path: Path, loader: Loader, prefix: str, progress: bool) -> int:
    rows = csv_rows(path, progress)
    _, header = next(rows, (1, None))
    id_col, = column_positions(path, header, ("user_id",))
    names = [h.strip() for h in header]
    count = 0
    for line, row in rows:
        user_id = check_id(path, line, id_col + 1, row[id_col], "user_id", prefix)
        attrs = {names[c]: value for c, value in enumerate(row) if c != id_col and value != ""}
        loader.add("users", (user_id, attrs))
        count += 1
    return count
