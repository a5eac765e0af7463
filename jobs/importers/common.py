"""What every import format shares: errors that name file, line and column; opening plain or
gzip files with a byte-counting progress bar; and the Loader, which streams rows into temporary
tables with COPY and merges them into the real tables in one transaction (the SQL is in
sql/imports.sql).

Merging is idempotent: interactions are keyed by event_id (each format derives a stable one),
catalogue rows are upserted and links inserted once, so a re-run adds nothing.
"""
from __future__ import annotations

import csv
import gzip
import io
import json
import sys
import time
import zlib
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from tqdm import tqdm

from app.catalogue.records import id_problem
from app.infra import queries as q


class ImportFailed(ValueError):
    """Malformed input. str() reads `path:line:column: message` (column may be a field name)."""

    def __init__(self, path, line: int | None, column, message: str):
        self.path, self.line, self.column, self.message = str(path), line, column, message
        where = self.path
        if line is not None:
            where += f":{line}"
            if column is not None:
                where += f":{column}"
        super().__init__(f"{where}: {message}")


@dataclass
class ImportReport:
    path: str
    format: str
    rows_read: int = 0
    created: dict = field(default_factory=dict)   # table -> rows new in the database
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)      # what the format inferred (Loader.notes)
    warnings: list[str] = field(default_factory=list)   # imported, but something the operator must fix

    def summary(self) -> str:
        parts = ", ".join(f"{n} {table}" for table, n in self.created.items() if n)
        return (f"{self.path}: read {self.rows_read} rows in {self.seconds:.1f}s; "
                f"new: {parts or 'nothing (already imported)'}" + "".join(f"; {n}" for n in self.notes)
                + "".join(f"\nwarning: {w}" for w in self.warnings))


@contextmanager
def open_text(path: Path, progress: bool, desc: str, encoding: str = "utf-8"):
    """Open a plain or .gz text file; the progress bar counts bytes read from disk."""
    path = Path(path)
    raw = open(path, "rb")
    bar = tqdm(total=path.stat().st_size, unit="B", unit_scale=True, desc=desc, file=sys.stderr,
               disable=not progress or None, leave=False)

    class Counting(io.RawIOBase):
        def readable(self):
            return True

        def readinto(self, buffer):
            n = raw.readinto(buffer)
            bar.update(n or 0)
            return n

    counted = io.BufferedReader(Counting(), buffer_size=1 << 20)
    binary = gzip.GzipFile(fileobj=counted) if path.name.endswith(".gz") else counted
    text = io.TextIOWrapper(binary, encoding=encoding, newline="")
    try:
        yield text
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise ImportFailed(path, None, None, f"the file is truncated or not valid gzip ({exc})") from None
    except UnicodeDecodeError as exc:
        raise ImportFailed(path, None, None, f"not {encoding} text ({exc.reason} at byte {exc.start})") from None
    finally:
        bar.close()
        raw.close()


# What reading raises when a file is cut short, is not valid gzip, or is not the expected text.
READ_ERRORS = (EOFError, zlib.error, gzip.BadGzipFile, UnicodeDecodeError, csv.Error)


def read_failed(path, line: int, exc: Exception) -> ImportFailed:
    """The ImportFailed for a READ_ERRORS exception met while reading `line`."""
    if isinstance(exc, UnicodeDecodeError):
        # Text is decoded in chunks ahead of the line being parsed: find the line to blame.
        line, byte = _undecodable(path, exc.encoding) or (line, None)
        where = f"byte {byte} of the line" if byte else "the line"
        message = f"not {exc.encoding} text: {where} cannot be decoded ({exc.reason}); save the file as {exc.encoding}"
    elif isinstance(exc, csv.Error):
        message = f"malformed CSV ({exc})"
    else:
        message = f"the file ends early: it is truncated or not valid gzip ({exc})"
    return ImportFailed(path, line, None, message)


def _undecodable(path, encoding: str) -> tuple[int, int] | None:
    """(line, 1-based byte in it) of the first line of `path` that `encoding` cannot decode."""
    with (gzip.open if str(path).endswith(".gz") else open)(path, "rb") as f:
        try:
            for number, raw in enumerate(f, 1):
                try:
                    raw.decode(encoding)
                except UnicodeDecodeError as exc:
                    return number, exc.start + 1
        except (EOFError, zlib.error, gzip.BadGzipFile):
            pass
    return None


def csv_rows(path: Path, progress: bool, encoding: str = "utf-8-sig", width: int | None = None, layout: str = "",
             **options):
    """Yield (line number, fields) for every non-blank row of a CSV file, plain or .gz.

    Every row must have `width` fields, or if that is None as many as the first one (the header,
    if any); `layout` describes them for the error message. A file cut short raises ImportFailed
    too: a truncated .gz, or a plain file whose last line has no line break. `options` go to
    csv.reader (delimiter, quoting).
    """
    path = Path(path)
    if not path.is_file():
        raise ImportFailed(path, None, None, "no such file" if not path.exists() else "not a file")
    with open_text(path, progress, desc=path.name, encoding=encoding) as text:
        reader = csv.reader(text, **options)
        if width is not None:
            layout = f"{width} fields" + (f" ({layout})" if layout else "")
        try:
            for row in reader:
                if not row:
                    continue  # a blank line
                if width is None:
                    width, layout = len(row), f"{len(row)} fields, as on line {reader.line_num}"
                elif len(row) != width:
                    raise ImportFailed(path, reader.line_num, min(len(row), width) + 1,
                                       f"expected {layout}, found {len(row)}")
                yield reader.line_num, row
        except READ_ERRORS as exc:
            raise read_failed(path, reader.line_num + 1, exc) from None
        # Exports end every line with a break; a file cut mid-line would otherwise import a
        # shortened last value (a skill name, a title) without complaint.
        if not path.name.endswith(".gz") and not _ends_with_line_break(path):
            raise ImportFailed(path, reader.line_num, None, "the last line has no line break, so the file looks "
                               "cut off mid-line; if it is complete, end it with a newline")


def column_positions(path, header: list[str] | None, columns: tuple[str, ...]) -> list[int]:
    """Where each of `columns` is in a header row (any order, case and spaces ignored)."""
    if header is None:
        raise ImportFailed(path, 1, None, f"the file is empty; expected a header with {','.join(columns)}")
    names = [h.strip().lower() for h in header]
    missing = [c for c in columns if c not in names]
    if missing:
        raise ImportFailed(path, 1, None, f"the header lacks {', '.join(missing)}: expected the columns "
                           f"{','.join(columns)} (in any order), got {','.join(header)[:300]}")
    return [names.index(c) for c in columns]


def unix_time(path, line: int, column, raw: str) -> str:
    """Whole seconds since 1970 (as text) -> an ISO 8601 UTC time, else ImportFailed."""
    try:
        if raw.isdecimal():
            return datetime.fromtimestamp(int(raw), UTC).isoformat()
    except (OverflowError, OSError, ValueError):
        pass  # beyond the year 9999
    raise ImportFailed(path, line, column, f"timestamp must be whole seconds since 1970 (unix time), got {raw[:50]!r}")


def _ends_with_line_break(path: Path) -> bool:
    with open(path, "rb") as f:
        if f.seek(0, io.SEEK_END) == 0:
            return True  # empty
        f.seek(-1, io.SEEK_END)
        return f.read(1) in (b"\n", b"\r")


def check_id(path, line: int, column, raw: str, what: str, prefix: str = "") -> str:
    """Return prefix + raw if the schema and the API accept it as an id, else raise ImportFailed."""
    value = prefix + raw
    if not raw or id_problem(value) is not None:  # the API's rule (app.catalogue.records.Identifier)
        raise ImportFailed(path, line, column, f"{what} must be 1-256 characters (with the id prefix) "
                           f"without control characters, got {raw[:300]!r}")
    return value


# Columns staged per table, in the order rows are given to Loader.add(); the stage tables of
# create_import_stages (sql/imports.sql) have these columns.
TABLES = {
    "users": ("user_id", "attrs"),
    "items": ("item_id", "kind", "title", "body", "attrs", "active"),
    "units": ("unit_id", "name", "kind", "attrs"),
    "unit_children": ("parent", "child"),
    "unit_items": ("unit_id", "item_id", "position"),
    "interactions": ("event_id", "user_id", "item_id", "kind", "outcome", "value", "duration_ms",
                     "response", "occurred_at"),
}


class Loader:
    """Collects rows per table, COPYs them into temporary tables in chunks, then merges.

    The caller owns the transaction: everything happens in it, so a failure anywhere leaves
    nothing behind. Temporary tables are dropped at commit or rollback.
    """

    def __init__(self, conn, *, tenant: str, chunk_rows: int = 100_000, bulk: bool = False):
        self.conn = conn
        self.tenant = tenant   # everything staged is merged into this tenant
        # A bulk load (a first import, the scale run's demo): the interactions' non-unique indexes
        # and foreign keys are dropped for the insert and built again after it, in the same
        # transaction. Several times faster at millions of rows, but the table is
        # locked (ACCESS EXCLUSIVE) until the import commits: the API's reads of it wait.
        self.bulk = bulk
        self.chunk_rows = chunk_rows
        self._buffers = {t: io.StringIO() for t in TABLES}
        self._writers = {t: csv.writer(b, quoting=csv.QUOTE_NONNUMERIC, lineterminator="\n")
                         for t, b in self._buffers.items()}
        self._pending = dict.fromkeys(TABLES, 0)
        self.staged = dict.fromkeys(TABLES, 0)
        self.item_lines: dict[str, tuple[str, int]] = {}  # item_id -> (file, line) of its first interaction
        self.notes: list[str] = []     # what a format inferred from its input, for the report
        self.warnings: list[str] = []  # what the operator must fix (imported all the same)
        # Rows a format stored itself in the same transaction (xapi: the xAPI ingest), for the report.
        self.created_elsewhere: dict[str, int] = {}
        q.execute(conn, "create_import_stages")

    def add(self, table: str, row: tuple) -> None:
        """Stage one row; dicts are stored as JSON, booleans as true/false, None as NULL."""
        self._writers[table].writerow([_cell(v) for v in row])
        self._pending[table] += 1
        if self._pending[table] >= self.chunk_rows:
            self._flush(table)

    def add_interaction(self, row: tuple, source: str, line: int) -> None:
        self.item_lines.setdefault(row[2], (source, line))
        self.add("interactions", row)

    def _flush(self, table: str) -> None:
        buffer = self._buffers[table]
        if not self._pending[table]:
            return
        buffer.seek(0)
        with self.conn.cursor() as cur:
            # COPY FROM STDIN is the driver's bulk path, not a query: its column list is TABLES.
            # QUOTE_NONNUMERIC writes None as "" (quoted), which COPY would load as an empty
            # string and reject for numbers, JSON and times: FORCE_NULL makes it NULL.
            cols = ", ".join(TABLES[table])
            cur.copy_expert(f"COPY stage_{table} ({cols}) FROM STDIN WITH (FORMAT csv, FORCE_NULL ({cols}))",
                            buffer)
        self.staged[table] += self._pending[table]
        self._pending[table] = 0
        buffer.seek(0)
        buffer.truncate()

    def finish(self) -> dict[str, int]:
        """Merge everything staged into the real tables; returns new rows per table."""
        for table in TABLES:
            self._flush(table)
        created = {}
        for table in ("units", "items", "users"):
            created[table] = q.execute(self.conn, f"merge_stage_{table}", tenant=self.tenant)
        self._check_references()  # before the links, so a bad id is our message, not an FK error
        for table in ("unit_children", "unit_items"):
            created[table] = q.execute(self.conn, f"merge_stage_{table}", tenant=self.tenant)
        if self.bulk:
            created["interactions"] = self._merge_interactions_bulk()
        else:
            created["interactions"] = q.execute(self.conn, "merge_stage_interactions", tenant=self.tenant)
        for table, n in self.created_elsewhere.items():
            created[table] = created.get(table, 0) + n
        return created

    def _merge_interactions_bulk(self) -> int:
        """Insert with only the unique indexes in place, then build the other indexes (one sort
        each) and check the foreign keys (one join each) instead of row by row: the row-by-row
        foreign key checks and scattered index writes are most of a big merge's time."""
        rebuild = q.fetch_all(self.conn, "interactions_rebuildable")
        with self.conn.cursor() as cur:
            cur.execute("SET LOCAL maintenance_work_mem = '1GB'")
            for r in rebuild:   # names and definitions from the catalogue, not from input
                if r["kind"] == "index":
                    cur.execute(f'DROP INDEX "{r["name"]}"')
                else:
                    cur.execute(f'ALTER TABLE interactions DROP CONSTRAINT "{r["name"]}"')
        created = q.execute(self.conn, "merge_stage_interactions_bulk", tenant=self.tenant)
        with self.conn.cursor() as cur:
            for r in rebuild:
                if r["kind"] == "index":
                    cur.execute(r["definition"])
                else:
                    cur.execute(f'ALTER TABLE interactions ADD CONSTRAINT "{r["name"]}" {r["definition"]}')
            cur.execute("ANALYZE interactions")
        return created

    def _check_references(self) -> None:
        missing = [r["item_id"] for r in q.fetch_all(self.conn, "first_unknown_staged_items", tenant=self.tenant)]
        if missing:
            source, line = self.item_lines.get(missing[0], ("input", None))
            raise ImportFailed(source, line, "item_id",
                               f"unknown item {missing[0]!r}: it is neither in the database nor in this import")
        link = q.fetch_one(self.conn, "first_dangling_staged_link", tenant=self.tenant)
        if link:
            raise ImportFailed("input", None, None,
                               f"{link['link_table']}.{link['link_column']} names {link['target']} "
                               f"{link['value']!r}, which is neither in the database nor in this import")


def _cell(value):
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return value


class Timer:
    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start
