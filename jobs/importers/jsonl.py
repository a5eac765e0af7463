"""JSON Lines: one object per line, `"type"` user, item, unit or interaction, and otherwise
exactly the fields of the API's records (app.catalogue.records), validated by the same classes.

Import only adds: an item's `units`, a unit's `children` and `items` add links and never remove
any (the API's PUT replaces them). An interaction without event_id gets one derived from its
content, so importing the same file again stores nothing twice. See docs/IMPORT_FORMATS.md.
"""
from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

from pydantic import ValidationError

from app.catalogue.records import Interaction, Item, Unit, User
from app.infra import queries as q
from jobs.importers.common import READ_ERRORS, ImportFailed, Loader, check_id, open_text, read_failed

DESCRIPTION = "JSON Lines of users, items, units and interactions (the API's models plus \"type\"); .jsonl or .jsonl.gz"

MODELS = {"user": User, "item": Item, "unit": Unit, "interaction": Interaction}


def read(path: Path, loader: Loader, id_prefix: str = "", progress: bool = True) -> int:
    """Stage every object of the file; returns the number of objects read (blank lines skipped)."""
    if not path.is_file():
        raise ImportFailed(path, None, None, "no such file" if not path.exists() else "not a file")
    batch = _Batch(path, loader, id_prefix)
    lineno = count = 0
    with open_text(path, progress, desc=path.name) as text:
        try:
            for lineno, line in enumerate(text, 1):
                if line.strip():
                    batch.add(lineno, line)
                    count += 1
        except READ_ERRORS as exc:
            raise read_failed(path, lineno + 1, exc) from None
    batch.finish()
    return count


class _Batch:
    """The objects of one file: catalogue rows (a later line for the same id wins), interactions
    (staged at once), and every id a link names, to check that it exists before merging."""

    def __init__(self, path: Path, loader: Loader, prefix: str):
        self.path, self.source, self.loader, self.prefix = path, str(path), loader, prefix
        # Interactions without occurred_at happened "now", as in the API: one time for the whole file.
        self.now = datetime.now(UTC).isoformat()
        self.rows = {"users": {}, "items": {}, "units": {}}      # table -> id -> row
        self.named = {"units": {}, "items": {}}                   # id named by a link -> (line, field)

    def add(self, lineno: int, line: str) -> None:
        obj = _parse_object(self.path, lineno, line)
        kind = obj.get("type")
        model = MODELS.get(kind) if isinstance(kind, str) else None
        if model is None:
            raise ImportFailed(self.path, lineno, "type", f"type must be one of {', '.join(MODELS)}, got {kind!r}")
        fields = {k: v for k, v in obj.items() if k != "type"}
        try:
            record = model.model_validate(fields)
        except ValidationError as exc:
            raise _invalid(self.path, lineno, kind, model, exc) from None
        getattr(self, f"_{kind}")(lineno, record, obj)

    # ---- one method per type -----------------------------------------------------------
    def _user(self, lineno: int, user: User, obj: dict) -> None:
        user_id = self._id(lineno, "user_id", user.user_id)
        self.rows["users"][user_id] = (user_id, user.attrs)

    def _item(self, lineno: int, item: Item, obj: dict) -> None:
        item_id = self._id(lineno, "item_id", item.item_id)
        self.rows["items"][item_id] = (item_id, item.kind, item.title, item.body, item.attrs, item.active)
        for i, unit in enumerate(item.units or ()):
            unit_id = self._id(lineno, f"units[{i}]", unit, named="units")
            self.loader.add("unit_items", (unit_id, item_id, None))

    def _unit(self, lineno: int, unit: Unit, obj: dict) -> None:
        unit_id = self._id(lineno, "unit_id", unit.unit_id)
        self.rows["units"][unit_id] = (unit_id, unit.name, unit.kind, unit.attrs)
        for i, child in enumerate(unit.children or ()):
            child_id = self._id(lineno, f"children[{i}]", child, named="units")
            if child_id == unit_id:
                raise ImportFailed(self.path, lineno, f"children[{i}]", "a unit cannot be its own child")
            self.loader.add("unit_children", (unit_id, child_id))
        listed = {}  # item id -> position, 0, 1, ... in list order, duplicates once (as the API)
        for i, item in enumerate(unit.items or ()):
            listed.setdefault(self._id(lineno, f"items[{i}]", item, named="items"), len(listed))
        for item_id, position in listed.items():
            self.loader.add("unit_items", (unit_id, item_id, position))

    def _interaction(self, lineno: int, event: Interaction, obj: dict) -> None:
        if event.event_id is not None:
            event_id = self._id(lineno, "event_id", event.event_id)
        else:
            event_id = self._id(lineno, "event_id", derived_event_id(obj))
        user_id = self._id(lineno, "user_id", event.user_id)
        item_id = self._id(lineno, "item_id", event.item_id)
        at = event.occurred_at.isoformat() if event.occurred_at else self.now
        self.loader.add_interaction((event_id, user_id, item_id, event.kind, event.outcome, event.value,
                                     event.duration_ms, event.response, at), self.source, lineno)

    # ---- helpers -------------------------------------------------------------------------
    def _id(self, lineno: int, field: str, raw: str, named: str | None = None) -> str:
        """The prefixed id; remembers where a link first names it, for the existence check."""
        value = check_id(self.path, lineno, field, raw, field.split("[")[0], self.prefix)
        if named is not None:
            self.named[named].setdefault(value, (lineno, field))
        return value

    def finish(self) -> None:
        """Stage the catalogue rows, after checking that every linked unit and item exists."""
        for table in ("units", "items"):
            self._check_named(table)
        for table, rows in self.rows.items():
            for row in rows.values():
                self.loader.add(table, row)

    def _check_named(self, table: str) -> None:
        # The Loader checks links too, but only here do we still know the line that named the id.
        unknown = [i for i in self.named[table] if i not in self.rows[table]]
        if not unknown:
            return
        existing = {r["id"] for r in q.fetch_all(self.loader.conn, f"existing_{table}", tenant=self.loader.tenant,
                                                 ids=unknown)}
        missing = [i for i in unknown if i not in existing]
        if missing:
            first = min(missing, key=lambda i: self.named[table][i])
            lineno, field = self.named[table][first]
            more = f" ({len(missing) - 1} more unknown)" if len(missing) > 1 else ""
            raise ImportFailed(self.path, lineno, field, f"unknown {table[:-1]} {first!r}: it is neither in the "
                               f"database nor in this file{more}")


def derived_event_id(obj: dict) -> str:
    """`jsonl:` + SHA-1 of the object as canonical JSON (keys sorted, no spaces): the same line
    always gives the same id, so a re-import is a no-op."""
    canonical = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "jsonl:" + hashlib.sha1(canonical.encode()).hexdigest()


def _parse_object(path: Path, lineno: int, line: str) -> dict:
    try:
        obj = json.loads(line.rstrip("\r\n"), parse_constant=_no_constant)  # a cut string: not "control character"
    except json.JSONDecodeError as exc:
        ends_early = exc.pos >= len(line.rstrip()) or exc.msg.startswith("Unterminated string")
        cut = " (the line looks cut off)" if ends_early else ""
        raise ImportFailed(path, lineno, exc.colno, f"not valid JSON: {exc.msg}{cut}") from None
    except ValueError as exc:
        raise ImportFailed(path, lineno, None, f"not valid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise ImportFailed(path, lineno, None, f"each line must be one JSON object {{...}}, got {type(obj).__name__}")
    return obj


def _no_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")  # json.loads would accept NaN and Infinity


def _invalid(path: Path, lineno: int, kind: str, model, exc: ValidationError) -> ImportFailed:
    """The first validation error as path:line:field: message."""
    errors = exc.errors(include_url=False)
    first = errors[0]
    field = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in first["loc"]).lstrip(".") or None
    a_kind = ("an " if kind[0] in "aeiou" else "a ") + kind
    if first["type"] == "missing":
        message = f"{field} is required for {a_kind}"
    elif first["type"] == "extra_forbidden":
        message = f"unknown field for {a_kind}; expected: type, {', '.join(model.model_fields)}"
    elif first["type"] in ("too_short", "too_long") and isinstance(first["input"], str):
        # pydantic words the length limits of the API's Identifier as "items"; say characters.
        if first["type"] == "too_short":
            message = f"must have at least {first['ctx']['min_length']} character(s), got {first['input']!r}"
        else:
            message = f"must have at most {first['ctx']['max_length']} characters, got {len(first['input'])}"
    else:
        message = first["msg"].removeprefix("Value error, ")
        if first["loc"]:
            message += f", got {json.dumps(first['input'], default=str)[:200]}"
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more error{'s' if len(errors) > 2 else ''} on this line)"
    return ImportFailed(path, lineno, field, message)
