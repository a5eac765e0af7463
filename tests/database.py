"""Each test starts from the database as the migrations left it.

The tables to empty are read from the migrated schema (not kept by hand), so a table a new
migration adds is emptied too. Rows are deleted, children before the tables they reference, only
from tables that hold any, and the sequences a test used start again at 1: on these small tables
that is milliseconds, where a TRUNCATE of every table costs a few hundred (new files for each
table and index). A rolled-back transaction cannot do it: the app under test commits on
connections of its own.
"""
from __future__ import annotations

from contextlib import closing
from dataclasses import dataclass

import psycopg2
import pytest

# The tables the migrations fill, and how a test's changes to them are undone:
#   schema_migrations  the migrations' own record: never touched;
#   tenants            the 'default' tenant (007): every other tenant is deleted (its rows go with it,
#                      ON DELETE CASCADE) and the default's name and settings are set back;
#   catalog_state      one row per tenant (007), deleted with its tenant. The default's version only
#                      ever grows: it keys the candidate lists cached in Redis, which outlive a test.
MIGRATED_DATA = ("schema_migrations", "tenants", "catalog_state")

_TABLES = """
SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') AND NOT c.relispartition
ORDER BY c.relname"""
# (referencing table, referenced table) of every foreign key between two tables of the schema
_REFERENCES = """
SELECT DISTINCT child.relname, parent.relname
FROM pg_constraint k
JOIN pg_class child ON child.oid = k.conrelid
JOIN pg_class parent ON parent.oid = k.confrelid
JOIN pg_namespace n ON n.oid = child.relnamespace
WHERE k.contype = 'f' AND n.nspname = current_schema() AND NOT child.relispartition"""


@dataclass(frozen=True)
class Schema:
    tables: tuple[str, ...]                 # every table a test may fill, children before their parents
    tenants: tuple[tuple[str, str, str], ...]   # (tenant, name, settings as JSON) as migrated


def read_schema(url: str) -> Schema:
    """The migrated database's tables, read once before any test writes to it. Refuses a migration
    that fills a table MIGRATED_DATA does not name (say there how a test's changes are undone)."""
    with closing(psycopg2.connect(url)) as conn, conn.cursor() as cur:
        cur.execute(_TABLES)
        every = [r[0] for r in cur.fetchall()]
        cur.execute("SELECT " + ", ".join(f'EXISTS (SELECT FROM "{t}")' for t in every))
        filled = {t for t, has_rows in zip(every, cur.fetchone()) if has_rows}
        unknown = sorted(filled - set(MIGRATED_DATA))
        if unknown:
            raise pytest.UsageError(f"the migrations insert rows into {', '.join(unknown)}: add them to MIGRATED_DATA "
                                    f"in tests/database.py and say how a test's changes to them are undone")
        cur.execute(_REFERENCES)
        references = cur.fetchall()
        cur.execute("SELECT tenant, name, settings::text FROM tenants ORDER BY tenant")
        tenants = tuple(cur.fetchall())
    tables = [t for t in every if t not in MIGRATED_DATA]
    return Schema(children_first(tables, references), tenants)


def children_first(tables: list[str], references: list[tuple[str, str]]) -> tuple[str, ...]:
    """`tables` ordered so that each comes before every table it references (a self-reference is
    no constraint on the order: the rows go in one statement)."""
    refers = {t: {p for c, p in references if c == t and p in tables and p != t} for t in tables}
    ordered: list[str] = []
    while len(ordered) < len(tables):
        # a table no remaining table references can go now
        ready = [t for t in tables if t not in ordered
                 and not any(t in refers[other] for other in tables if other not in ordered)]
        if not ready:
            raise RuntimeError(f"foreign keys in a cycle among {sorted(set(tables) - set(ordered))}")
        ordered.extend(ready)
    return tuple(ordered)


def empty_database(conn, schema: Schema) -> None:
    """Put the database back as the migrations left it (see the module's docstring)."""
    conn.rollback()
    with conn.cursor() as cur:
        cur.execute("SELECT " + ", ".join(f'EXISTS (SELECT FROM "{t}")' for t in schema.tables))
        for table, has_rows in zip(schema.tables, cur.fetchone()):
            if has_rows:
                cur.execute(f'DELETE FROM "{table}"')
        cur.execute("DELETE FROM tenants WHERE tenant <> ALL(%s)", ([t for t, _, _ in schema.tenants],))
        for tenant, name, settings in schema.tenants:
            cur.execute("INSERT INTO tenants (tenant, name, settings) VALUES (%s, %s, %s::jsonb) ON CONFLICT (tenant) "
                        "DO UPDATE SET name = excluded.name, settings = excluded.settings", (tenant, name, settings))
        # what TRUNCATE ... RESTART IDENTITY did: the next id of every used sequence is 1 again
        cur.execute("SELECT setval(format('%I.%I', schemaname, sequencename), 1, false) FROM pg_sequences "
                    "WHERE schemaname = current_schema() AND last_value IS NOT NULL")
    conn.commit()
