"""Numbered plain-SQL migrations (migrations/NNN_name.sql), applied in order.

Each file runs in its own transaction and is recorded in schema_migrations with a checksum.
Two processes migrating at once serialise on an advisory lock: the second waits, then finds
nothing left to do. lock_timeout bounds every wait, so a migration stuck behind a long
transaction fails with a clear message instead of hanging the deploy.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg2

from app.config import MIGRATIONS_DIR
from app.infra import queries as q

if TYPE_CHECKING:
    from psycopg2.extensions import connection as Connection

# Arbitrary constant naming "adaptrec migrations" among advisory locks.
MIGRATION_LOCK_KEY = 0x61647270  # "adrp"
_FILE = re.compile(r"^(\d{3,})_([a-z0-9_]+)\.sql$")


class MigrationError(RuntimeError):
    pass


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path

    @property
    def sql(self) -> str:
        return self.path.read_text()

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    found = []
    for path in sorted(directory.glob("*.sql")):
        match = _FILE.match(path.name)
        if not match:
            raise MigrationError(f"{path.name}: migration files are named NNN_name.sql")
        found.append(Migration(int(match.group(1)), match.group(2), path))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError("two migration files share a version number")
    return found


def applied(conn: Connection) -> dict[int, dict]:
    if not q.fetch_one(conn, "schema_migrations_exists")["present"]:
        return {}
    return {r["version"]: {"name": r["name"], "checksum": r["checksum"], "applied_at": r["applied_at"]}
            for r in q.fetch_all(conn, "applied_migrations")}


def status(conn: Connection, directory: Path = MIGRATIONS_DIR) -> list[dict]:
    """One row per known migration: version, name, applied_at (None if pending), changed."""
    done = applied(conn)
    conn.rollback()
    rows = []
    for m in discover(directory):
        rec = done.get(m.version)
        rows.append({
            "version": m.version,
            "name": m.name,
            "applied_at": rec["applied_at"] if rec else None,
            "changed": bool(rec) and rec["checksum"] != m.checksum,
        })
    return rows


def migrate(conn: Connection, *, lock_timeout_ms: int = 30000, directory: Path = MIGRATIONS_DIR,
            log=lambda msg: None) -> list[Migration]:
    """Apply every pending migration; returns those applied by this call."""
    # migrate owns this connection's transactions: one per file, so autocommit must be off.
    conn.rollback()
    conn.autocommit = False
    pending_done: list[Migration] = []
    with conn.cursor() as cur:
        cur.execute("SET lock_timeout = %s", (f"{int(lock_timeout_ms)}ms",))
        try:
            cur.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
        except psycopg2.errors.LockNotAvailable:
            conn.rollback()
            raise MigrationError(
                f"another process has held the migration lock for over {lock_timeout_ms} ms; try again"
            ) from None
        conn.commit()
    try:
        q.execute(conn, "create_schema_migrations")
        conn.commit()
        done = applied(conn)
        for m in discover(directory):
            if m.version in done:
                continue
            log(f"applying migration {m.version:03d}_{m.name}")
            try:
                with conn.cursor() as cur:
                    cur.execute(m.sql)
                q.execute(conn, "record_migration", version=m.version, migration_name=m.name,
                          checksum=m.checksum)
                conn.commit()
            except psycopg2.errors.LockNotAvailable:
                conn.rollback()
                raise MigrationError(
                    f"migration {m.path.name}: a table it alters stayed locked for over {lock_timeout_ms} ms "
                    "(a long transaction?); nothing from it was applied"
                ) from None
            except psycopg2.Error as exc:
                conn.rollback()
                first = str(exc).strip().splitlines()[0]
                raise MigrationError(f"migration {m.path.name} failed and was rolled back: {first}") from None
            pending_done.append(m)
    finally:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_KEY,))
        conn.commit()
    return pending_done
