"""Named SQL queries loaded from sql/*.sql (the aiosql convention, in a few dozen lines).

A file holds blocks that start with `-- name: some_query` and a one-line `--` description,
then the SQL. Parameters are written `:name` so the text stays runnable in psql after a
`\\set name ...`; they are turned into psycopg2's `%(name)s` when loaded. Callers pass the
connection and own the transaction.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from app.config import SQL_DIR
from app.infra.db import dict_cursor

if TYPE_CHECKING:
    from psycopg2.extensions import connection as Connection

_NAME = re.compile(r"^--\s*name:\s*([a-z_][a-z0-9_]*)\s*$", re.MULTILINE)
# `:param` but not a `::cast`, and not inside a quoted string (our files keep params out of strings)
_PARAM = re.compile(r"(?<![:\w]):([a-z_][a-z0-9_]*)\b")


@dataclass(frozen=True)
class Query:
    name: str
    doc: str
    sql: str  # psycopg2 form, with %(name)s placeholders


def _parse(text: str, source: str) -> dict[str, Query]:
    queries: dict[str, Query] = {}
    matches = list(_NAME.finditer(text))
    for i, match in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        body = text[match.end():end].strip("\n")
        doc_lines, sql_lines = [], []
        for line in body.splitlines():
            if not sql_lines and line.startswith("--"):
                doc_lines.append(line.lstrip("- ").strip())
            else:
                sql_lines.append(line)
        sql = "\n".join(sql_lines).strip().rstrip(";")
        sql = sql.replace("%", "%%")
        name = match.group(1)
        if name in queries:
            raise ValueError(f"{source}: query {name!r} is defined twice")
        queries[name] = Query(name, " ".join(doc_lines), _PARAM.sub(r"%(\1)s", sql))
    return queries


@lru_cache(maxsize=1)
def all_queries(sql_dir: Path = SQL_DIR) -> dict[str, Query]:
    found: dict[str, Query] = {}
    for path in sorted(sql_dir.glob("*.sql")):
        for name, query in _parse(path.read_text(), path.name).items():
            if name in found:
                raise ValueError(f"{path.name}: query {name!r} is already defined in another file")
            found[name] = query
    return found


def sql(name: str) -> str:
    try:
        return all_queries()[name].sql
    except KeyError:
        raise KeyError(f"no query named {name!r} in {SQL_DIR}") from None


def fetch_all(conn: Connection, name: str, **params) -> list[dict]:
    with dict_cursor(conn) as cur:
        cur.execute(sql(name), params)
        return cur.fetchall()


def fetch_tuples(conn: Connection, name: str, **params) -> list[tuple]:
    """fetch_all's rows as plain tuples, in the query's column order: for hot paths reading many
    rows, where building a dict per row costs more than the query."""
    with conn.cursor() as cur:
        cur.execute(sql(name), params)
        return cur.fetchall()


def fetch_one(conn: Connection, name: str, **params) -> dict | None:
    with dict_cursor(conn) as cur:
        cur.execute(sql(name), params)
        return cur.fetchone()


def execute(conn: Connection, name: str, **params) -> int:
    with conn.cursor() as cur:
        cur.execute(sql(name), params)
        return cur.rowcount
