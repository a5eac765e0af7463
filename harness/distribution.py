"""How adaptrec's tables can be sharded, and a check of a live schema against it (issue 15).

On one Postgres this changes nothing. On Citus (docs/SCALING.md, sql/citus.sql) the tables that
grow with learners are distributed by `user_id` and co-located, so a learner's profile, events
and answers live on one node and a request touches one shard; every other table is small and
becomes a reference table (a copy on every node). Why user_id and not the tenant: one tenant can
be the whole platform (a million learners on one node is the problem sharding solves).

Citus's rules this module checks on the live catalogue:
- every primary key and unique constraint of a distributed table includes user_id (a shard can
  only enforce uniqueness of rows it holds): interactions' idempotency key is (tenant, user_id,
  event_id), unique per learner, not globally;
- no foreign key from a reference table into a distributed one; foreign keys between distributed
  tables include user_id on both sides;
- every table is classified (a new table must be decided on, not drift in);
- every query on the request path over a distributed table filters on user_id (one shard), or is
  named in FAN_OUT with why fanning out is acceptable (cached, or off the common path).
"""
from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING

from app.infra import queries as q

if TYPE_CHECKING:
    from psycopg2.extensions import connection as Connection

DISTRIBUTION_COLUMN = "user_id"
DISTRIBUTED = ("users", "interactions", "recommendation_log", "knowledge_snapshots", "xapi_statements")
REFERENCE = ("tenants", "items", "units", "unit_children", "unit_items", "catalog_state", "models", "model_arrays",
             "experiments", "experiment_versions", "calibration_reports", "api_keys", "job_runs", "dashboard_sessions",
             "request_rollup", "xapi_activities")
COORDINATOR_ONLY = ("schema_migrations",)   # read and written by `adaptrec db migrate` alone

# Request-path queries over a distributed table that filter on one learner, with parameters to
# plan them with. Inserts route each row by its user_id and are not planned here.
USER_KEYED = {
    "user_recent_interactions": {"tenant": "default", "user_id": "u1", "limit": 500},
    "users_recent_interactions": {"tenant": "default", "user_ids": ["u1"], "limit": 500},   # the snapshot's batches
    "recent_history": {"tenant": "default", "user_id": "u1", "item_ids": ["i1"], "limit": 500},
    "user_positive_items": {"tenant": "default", "user_id": "u1"},
    "user_items_touched": {"tenant": "default", "user_id": "u1", "until": "2026-01-01T00:00:00Z"},
    "user_attrs": {"tenant": "default", "user_id": "u1"},
    "get_user": {"tenant": "default", "user_id": "u1"},
    "user_item_attempts": {"tenant": "default", "user_id": "u1"},
    "user_item_counts": {"tenant": "default", "user_id": "u1"},
    "known_statements": {"tenant": "default", "user_ids": ["u1"],
                         "statement_ids": ["3f1c2a5e-8d2b-4f6a-9c1e-7b5d2e0a4c11"]},
}
INSERTS = ("insert_interactions", "insert_recommendation_logs", "ensure_users", "upsert_users", "insert_statements")
# Request-path queries that read many learners' rows (every shard), and why that is acceptable.
FAN_OUT = {
    "item_success_rates": "the answer for a unit with no model at all: a new deployment before its first "
                          "training run, not a platform at scale",
    "popular_items": "a learner nothing is known of; cached in Redis for 5 minutes per unit list (app.serving.related)",
    "trending": "cached in Redis per tenant, units and window (app.serving.related)",
    "tenant_counts": "adaptrec tenants list and remove, not the request path",
    "list_tenants": "GET /v1/tenants and adaptrec tenants list: operators, not the request path",
    "totara_health": "Totara's /health-check: counts, called by an administrator",
    **dict.fromkeys(("experiment_units", "experiment_version_exposures", "experiment_version_attempts",
                     "experiment_version_calibration"),
                    "GET /v1/experiments/{name}/results: an admin's analysis of one experiment's learners, "
                    "not the request path"),
}

_SCAN_NODES = ("Seq Scan", "Index Scan", "Index Only Scan", "Bitmap Heap Scan", "Bitmap Index Scan")


def table_classes() -> dict[str, str]:
    return {**dict.fromkeys(DISTRIBUTED, "distributed"), **dict.fromkeys(REFERENCE, "reference"),
            **dict.fromkeys(COORDINATOR_ONLY, "coordinator")}


def violations(conn: Connection) -> list[str]:
    """What in the live schema (public) would keep DISTRIBUTED from being distributed by user_id
    and the rest from being reference tables; empty when Citus would accept it."""
    classes = table_classes()
    found: list[str] = []
    with conn.cursor() as cur:
        # Tables, not partitions (a partition follows its parent).
        cur.execute("""SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                       WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition""")
        tables = {r[0] for r in cur.fetchall()}
        for t in sorted(tables - set(classes)):
            found.append(f"table {t} is not classified in harness/distribution.py (distributed by user_id, reference, "
                         "or coordinator-only): decide before it grows")
        for t in sorted(set(DISTRIBUTED) - tables):
            found.append(f"distributed table {t} does not exist")
        # Each constraint's columns in its own order (WITH ORDINALITY: a plain unnest join may reorder
        # them, and a foreign key's pairs are matched by position).
        cur.execute("""SELECT c.conrelid::regclass::text, c.conname, c.contype, c.confrelid::regclass::text,
                              ARRAY(SELECT a.attname FROM unnest(c.conkey) WITH ORDINALITY k(attnum, n)
                                    JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum
                                    ORDER BY k.n)::text[],
                              ARRAY(SELECT a.attname FROM unnest(c.confkey) WITH ORDINALITY k(attnum, n)
                                    JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.attnum
                                    ORDER BY k.n)::text[]
                       FROM pg_constraint c JOIN pg_class r ON r.oid = c.conrelid
                       JOIN pg_namespace n ON n.oid = r.relnamespace
                       WHERE n.nspname = 'public' AND NOT r.relispartition AND c.contype IN ('p', 'u', 'f', 'x')""")
        for table, name, kind, target, cols, target_cols in cur.fetchall():
            mine, theirs = classes.get(table), classes.get(target) if target != "-" else None
            if mine == "distributed" and kind in ("p", "u", "x") and DISTRIBUTION_COLUMN not in cols:
                what = "primary key" if kind == "p" else "unique constraint"
                found.append(f"{table}: {what} {name} ({', '.join(cols)}) "
                             f"does not include {DISTRIBUTION_COLUMN}: a shard cannot enforce it")
            if kind != "f":
                continue
            if mine != "distributed" and theirs == "distributed":
                found.append(f"{table}: foreign key {name} points from a {mine or 'unclassified'} table into the "
                             f"distributed table {target}: Citus refuses it")
            if mine == "distributed" and theirs == "distributed":
                pairs = list(zip(cols, target_cols))
                if (DISTRIBUTION_COLUMN, DISTRIBUTION_COLUMN) not in pairs:
                    found.append(f"{table}: foreign key {name} into {target} does not join on {DISTRIBUTION_COLUMN}: "
                                 "co-located tables must")
        cur.execute("""SELECT t.relname, i.indexrelid::regclass::text,
                              ARRAY(SELECT a.attname FROM unnest(i.indkey::int2[]) k JOIN pg_attribute a
                                    ON a.attrelid = i.indrelid AND a.attnum = k)::text[]
                       FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid
                       JOIN pg_namespace n ON n.oid = t.relnamespace
                       WHERE n.nspname = 'public' AND i.indisunique AND NOT t.relispartition
                         AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)""")
        for table, index, cols in cur.fetchall():
            if classes.get(table) == "distributed" and DISTRIBUTION_COLUMN not in cols:
                found.append(f"{table}: unique index {index} ({', '.join(cols)}) does not include "
                             f"{DISTRIBUTION_COLUMN}")
    conn.rollback()
    return found


def touched_tables(sql: str) -> set[str]:
    """The distributed tables a query's text names (FROM, JOIN, INTO, UPDATE)."""
    return {m.group(2) for m in re.finditer(r"\b(FROM|JOIN|INTO|UPDATE)\s+(\w+)", sql, re.IGNORECASE)
            if m.group(2) in DISTRIBUTED}


def plan_violations(conn: Connection, name: str, params: dict) -> list[str]:
    """The scans of distributed tables in the plan of named query `name` that do not filter on
    user_id (a query that would visit every shard)."""
    partitions = _partitions(conn)
    with conn.cursor() as cur:
        cur.execute("EXPLAIN (FORMAT JSON) " + q.sql(name), params)
        plan = cur.fetchone()[0]
    conn.rollback()
    if isinstance(plan, str):
        plan = json.loads(plan)
    found = []
    for node in _nodes(plan[0]["Plan"]):
        relation = node.get("Relation Name")
        table = partitions.get(relation, relation)
        if node.get("Node Type") in _SCAN_NODES and table in DISTRIBUTED:
            conditions = " ".join(str(node.get(k, "")) for k in ("Index Cond", "Filter", "Recheck Cond"))
            if DISTRIBUTION_COLUMN not in conditions:
                found.append(f"{name}: {node['Node Type']} on {relation} without a {DISTRIBUTION_COLUMN} condition")
    return found


def _nodes(node: dict):
    yield node
    for child in node.get("Plans", ()):
        yield from _nodes(child)


def _partitions(conn: Connection) -> dict[str, str]:
    with conn.cursor() as cur:
        cur.execute("SELECT inhrelid::regclass::text, inhparent::regclass::text FROM pg_inherits")
        return dict(cur.fetchall())
