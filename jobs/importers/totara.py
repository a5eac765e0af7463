"""Totara Engage's recommender export: a folder with user_interactions.csv and, optionally,
item_data.csv and user_data.csv. The folder is imported as one unit.

- user_interactions.csv: user_id, item_id, rating (0 leisurely, 1 positive), timestamp (unix).
- item_data.csv: item_id, one-hot topic columns, then free text. A column is a topic when all
  its values are 0 or 1; the other columns are text, joined into items.body (for TF-IDF). A
  `type` or `item_type` column gives the item kind (else 'content'). Topics become units
  `topic:<name>` under a root unit `totara`, and the item's topics are also kept in attrs.
- user_data.csv: user_id and metadata columns (lang, ...), stored in users.attrs.

Interactions may name items already in the database instead of item_data.csv.
"""
from __future__ import annotations

import re
from pathlib import Path

from jobs.importers.common import ImportFailed, Loader, check_id, column_positions, csv_rows, unix_time

DESCRIPTION = "Totara Engage export folder: user_interactions.csv, optional item_data.csv and user_data.csv"

ROOT_ID, ROOT_NAME = "totara", "Totara"
INTERACTIONS, ITEMS, USERS = "user_interactions.csv", "item_data.csv", "user_data.csv"
TYPE_COLUMNS = ("type", "item_type")
KIND = re.compile(r"^[a-z][a-z0-9_]{0,31}$")  # as the schema's interactions.kind and the API's Kind
RATINGS = {"0": 0, "1": 1}


def read(path: Path, loader: Loader, id_prefix: str = "", progress: bool = True) -> int:
    """Stage items, users and interactions of the export folder; returns the rows read from all files."""
    folder = path.parent if path.is_file() else path
    if not (folder / INTERACTIONS).is_file():
        raise ImportFailed(folder / INTERACTIONS, None, None, f"missing: PATH must be a Totara export folder "
                           f"with {INTERACTIONS} (and optionally {ITEMS}, {USERS})")
    count = 0
    if (folder / ITEMS).exists():
        count += _read_items(folder / ITEMS, loader, id_prefix, progress)
    if (folder / USERS).exists():
        count += _read_users(folder / USERS, loader, id_prefix, progress)
    return count + _read_interactions(folder / INTERACTIONS, loader, id_prefix, progress)


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


def _read_items(path: Path, loader: Loader, prefix: str, progress: bool) -> int:
    # Which columns are topics is known only after the last row, so rows are held in memory:
    # a catalogue is thousands of rows, not millions.
    rows = csv_rows(path, progress)
    _, header = next(rows, (1, None))
    id_col, = column_positions(path, header, ("item_id",))
    names = [h.strip() for h in header]
    type_col = next((c for c, n in enumerate(names) if n.lower() in TYPE_COLUMNS), None)
    items = list(rows)
    others = [c for c in range(len(names)) if c not in (id_col, type_col)]
    topics = [c for c in others if items and all(row[c] in ("0", "1") for _, row in items)]
    texts = [c for c in others if c not in topics]

    root = prefix + ROOT_ID
    loader.add("units", (root, ROOT_NAME, "root", {}))
    for c in topics:
        if not names[c]:
            raise ImportFailed(path, 1, c + 1, f"column {c + 1} holds topic flags (0/1) but has no name in the header")
        unit_id = check_id(path, 1, c + 1, f"topic:{names[c]}", "the topic's unit id", prefix)
        loader.add("units", (unit_id, names[c], "topic", {}))
        loader.add("unit_children", (root, unit_id))
    for line, row in items:
        item_id = check_id(path, line, id_col + 1, row[id_col], "item_id", prefix)
        kind = row[type_col].strip().lower() if type_col is not None else "content"
        if not KIND.match(kind):
            raise ImportFailed(path, line, type_col + 1, "the item type must be a lower-case word (letters, digits, "
                               f"underscore; up to 32 characters), got {row[type_col]!r}")
        own = [names[c] for c in topics if row[c] == "1"]
        body = " ".join(row[c].strip() for c in texts if row[c].strip()) or None
        loader.add("items", (item_id, kind, None, body, {"topics": own}, True))
        for name in own:
            loader.add("unit_items", (f"{prefix}topic:{name}", item_id, None))
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
