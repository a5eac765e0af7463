"""xAPI statements, as a learning record store exports them: JSON Lines (one statement per line)
or one JSON array, plain or .gz. Each statement is validated (app.xapi.statements) and recorded
as POST /xapi/statements records it (app.catalogue.xapi_ingest: the tenant's rules, the statement
id as the event id, unmappable ones kept with the reason), in the import's one transaction.

Safe to re-run: a statement without an id gets one derived from its content (a UUID 5), so a
second import finds every statement known and stores nothing. A statement whose id was already
received with other content stops the import, naming its line. See docs/IMPORT_FORMATS.md.
"""
from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

from app.access import tenants
from app.catalogue.xapi_ingest import StatementConflict, ingest_statements
from app.xapi import mapping
from app.xapi.statements import StatementError, digest, validate_statement
from jobs.importers.common import READ_ERRORS, ImportFailed, Loader, open_text, read_failed

DESCRIPTION = "xAPI statements (an LRS export): JSON Lines or a JSON array, .json/.jsonl or .gz"
CHUNK = 1000   # statements recorded per round trip set
# The namespace of the ids derived for statements without one (uuid5 of the statement's digest).
NAMESPACE = uuid.UUID("5b0c3f0e-7a43-4f0b-9f6e-28a1d0a1c0de")


def read(path: Path, loader: Loader, id_prefix: str = "", progress: bool = True) -> int:
    """Record every statement of the file in the loader's transaction; returns how many were read."""
    if id_prefix:
        raise ImportFailed(path, None, None, "--id-prefix does not apply to xAPI statements: their users and "
                                             "items are named by the tenant's rules (import into another --tenant)")
    if not path.is_file():
        raise ImportFailed(path, None, None, "no such file" if not path.exists() else "not a file")
    settings = (tenants.get(loader.conn, loader.tenant) or {}).get("settings")
    try:
        rules = mapping.rules_from_settings(settings)
    except ValueError as exc:
        raise ImportFailed(path, None, None, f"tenant {loader.tenant!r}: {exc}") from None
    recorder = _Recorder(path, loader, rules)
    for place, obj in _statements(path, progress):
        recorder.add(place, obj)
    recorder.flush()
    loader.created_elsewhere.update(recorder.counts)
    return recorder.read


def _statements(path: Path, progress: bool):
    """(place, statement) per statement: place is the line number in a JSON Lines file, or the
    entry's index `[k]` in an array."""
    with open_text(path, progress, desc=path.name) as text:
        lineno = 0
        try:
            head = text.read(1)
            while head and head.isspace():
                lineno += head == "\n"
                head = text.read(1)
            if head == "[":
                try:
                    entries = json.loads(head + text.read(), parse_constant=_no_constant)
                except json.JSONDecodeError as exc:
                    raise ImportFailed(path, lineno + exc.lineno, exc.colno, f"not valid JSON: {exc.msg}") from None
                except ValueError as exc:
                    raise ImportFailed(path, None, None, f"not valid JSON: {exc}") from None
                for k, entry in enumerate(entries):
                    yield f"[{k}]", entry
                return
            first = True
            for line in text:
                if first:
                    line, first = head + line, False
                lineno += 1
                if line.strip():
                    yield lineno, _parse_line(path, lineno, line)
        except READ_ERRORS as exc:
            raise read_failed(path, lineno + 1, exc) from None


def _parse_line(path: Path, lineno: int, line: str):
    try:
        return json.loads(line, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        cut = " (the line looks cut off)" if exc.pos >= len(line.rstrip()) else ""
        raise ImportFailed(path, lineno, exc.colno, f"not valid JSON: {exc.msg}{cut}") from None
    except ValueError as exc:
        raise ImportFailed(path, lineno, None, f"not valid JSON: {exc}") from None


def _no_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


class _Recorder:
    """Validates each statement as it is read, records them CHUNK at a time."""

    def __init__(self, path: Path, loader: Loader, rules: mapping.Rules):
        self.path, self.loader, self.rules = path, loader, rules
        self.now = datetime.now(UTC)   # statements without timestamp or stored: one time for the whole file
        self.pending: list[tuple[object, dict]] = []
        self.seen: dict[str, tuple[object, str]] = {}   # id -> (place, digest)
        self.read = 0
        self.counts = {"units": 0, "items": 0, "interactions": 0, "xapi duplicates": 0, "xapi unmappable": 0}

    def _failed(self, place, where: str, message: str) -> ImportFailed:
        """file:line:field: message (JSON Lines), or file: [k].field: message (an array)."""
        if isinstance(place, int):
            return ImportFailed(self.path, place, where, message)
        return ImportFailed(self.path, None, None, f"{place}.{where}: {message}")

    def add(self, place, obj) -> None:
        try:
            validate_statement(obj)
        except StatementError as exc:
            raise self._failed(place, exc.where, f"{exc.message} (rule: {exc.rule})") from None
        content = digest(obj)
        if "id" not in obj:
            obj = {**obj, "id": str(uuid.uuid5(NAMESPACE, content))}
        key = obj["id"].lower()
        if key in self.seen:
            first, first_digest = self.seen[key]
            if first_digest == content:
                self.counts["xapi duplicates"] += 1
                self.read += 1
                return   # the same statement twice in the export: stored once
            raise self._failed(place, "id", f"the statement id {key} is also the id of another statement, at "
                                            f"{'line ' + str(first) if isinstance(first, int) else first}")
        self.seen[key] = (place, content)
        self.pending.append((place, obj))
        self.read += 1
        if len(self.pending) >= CHUNK:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        places = [p for p, _ in self.pending]
        try:
            done = ingest_statements(self.loader.conn, self.loader.tenant, [s for _, s in self.pending], self.rules,
                                     now=self.now)
        except StatementConflict as exc:
            raise self._failed(places[exc.index], "id", f"statement {exc.statement_id} was already received with "
                                                        f"other content; a statement is never changed") from None
        for table, n in done.created.items():
            self.counts[table] += n
        self.counts["interactions"] += done.status.count("recorded")
        self.counts["xapi duplicates"] += done.status.count("duplicate")
        self.counts["xapi unmappable"] += done.status.count("unmappable")
        self.pending = []
