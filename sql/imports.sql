-- File imports and the demo (jobs/importers/common.py Loader): rows are COPYed into temporary
-- stage_* tables, checked, then merged into the real tables, all in the caller's transaction, so
-- a failure anywhere leaves nothing behind. Merging is idempotent: a re-run adds nothing.

-- name: create_import_stages
-- Empty stage tables for one import, dropped at commit or rollback; columns as Loader.add() takes rows (common.TABLES).
-- IF NOT EXISTS + TRUNCATE: a second Loader in the same transaction starts from empty tables.
-- Built from the real tables WITH NO DATA, so the types match but NOT NULLs and defaults do not
-- apply yet: the merges fill in the defaults.
CREATE TEMP TABLE IF NOT EXISTS stage_users ON COMMIT DROP AS
    SELECT user_id, attrs FROM users WITH NO DATA;
CREATE TEMP TABLE IF NOT EXISTS stage_items ON COMMIT DROP AS
    SELECT item_id, kind, title, body, attrs, active FROM items WITH NO DATA;
CREATE TEMP TABLE IF NOT EXISTS stage_units ON COMMIT DROP AS
    SELECT unit_id, name, kind, attrs FROM units WITH NO DATA;
CREATE TEMP TABLE IF NOT EXISTS stage_unit_children ON COMMIT DROP AS
    SELECT parent, child FROM unit_children WITH NO DATA;
CREATE TEMP TABLE IF NOT EXISTS stage_unit_items ON COMMIT DROP AS
    SELECT unit_id, item_id, position FROM unit_items WITH NO DATA;
CREATE TEMP TABLE IF NOT EXISTS stage_interactions ON COMMIT DROP AS
    SELECT event_id, user_id, item_id, kind, outcome, value, duration_ms, response, occurred_at
    FROM interactions WITH NO DATA;
TRUNCATE stage_users, stage_items, stage_units, stage_unit_children, stage_unit_items, stage_interactions;

-- name: merge_stage_units
-- Upsert the staged units into tenant :tenant (one staged row per id); the row count is the units new or changed.
-- attrs are merged, not replaced, so keys set by other tools survive a re-import; an unchanged
-- row is not rewritten (no dead tuple, updated_at kept).
INSERT INTO units (tenant, unit_id, name, kind, attrs)
SELECT DISTINCT ON (unit_id) :tenant, unit_id, name, coalesce(kind, 'unit'), coalesce(attrs, '{}')
FROM stage_units ORDER BY unit_id
ON CONFLICT (tenant, unit_id) DO UPDATE SET name = EXCLUDED.name, kind = EXCLUDED.kind,
    attrs = units.attrs || EXCLUDED.attrs, updated_at = now()
WHERE (units.name, units.kind, units.attrs) IS DISTINCT FROM
      (EXCLUDED.name, EXCLUDED.kind, units.attrs || EXCLUDED.attrs);

-- name: merge_stage_items
-- Upsert the staged items like merge_stage_units; the row count is the items new or changed.
INSERT INTO items (tenant, item_id, kind, title, body, attrs, active)
SELECT DISTINCT ON (item_id) :tenant, item_id, coalesce(kind, 'question'), title, body,
       coalesce(attrs, '{}'), coalesce(active, true)
FROM stage_items ORDER BY item_id
ON CONFLICT (tenant, item_id) DO UPDATE SET kind = EXCLUDED.kind, title = EXCLUDED.title,
    body = EXCLUDED.body, attrs = items.attrs || EXCLUDED.attrs, active = EXCLUDED.active,
    updated_at = now()
WHERE (items.kind, items.title, items.body, items.attrs, items.active) IS DISTINCT FROM
      (EXCLUDED.kind, EXCLUDED.title, EXCLUDED.body, items.attrs || EXCLUDED.attrs, EXCLUDED.active);

-- name: merge_stage_users
-- Upsert the staged users and every user the staged interactions name; the row count is the users new or changed.
-- A staged user row (pri 0) beats a bare id from the interactions (pri 1), whose attrs are {}.
INSERT INTO users (tenant, user_id, attrs)
SELECT :tenant, user_id, attrs FROM (
    SELECT DISTINCT ON (user_id) user_id, coalesce(attrs, '{}') AS attrs
    FROM (SELECT user_id, attrs, 0 AS pri FROM stage_users
          UNION ALL SELECT DISTINCT user_id, NULL::jsonb, 1 FROM stage_interactions) s
    ORDER BY user_id, pri) u
ON CONFLICT (tenant, user_id) DO UPDATE SET attrs = users.attrs || EXCLUDED.attrs, updated_at = now()
WHERE users.attrs IS DISTINCT FROM users.attrs || EXCLUDED.attrs;

-- name: first_unknown_staged_items
-- Up to 5 items the staged interactions name that are not in items (run after merge_stage_items).
SELECT DISTINCT s.item_id FROM stage_interactions s
WHERE NOT EXISTS (SELECT 1 FROM items i WHERE i.tenant = :tenant AND i.item_id = s.item_id) LIMIT 5;

-- name: first_dangling_staged_link
-- The first staged link that names a unit or item in neither the database nor the import (run after the catalogue merges).
-- Checked here rather than left to the foreign keys so the message names the link; the checks
-- keep their order (n), and each stops at its first hit.
SELECT link_table, link_column, target, value FROM (
    (SELECT 1 AS n, 'unit_items' AS link_table, 'unit_id' AS link_column, 'unit' AS target, s.unit_id AS value
     FROM stage_unit_items s WHERE NOT EXISTS (SELECT 1 FROM units r WHERE r.tenant = :tenant AND r.unit_id = s.unit_id) LIMIT 1)
    UNION ALL
    (SELECT 2, 'unit_items', 'item_id', 'item', s.item_id
     FROM stage_unit_items s WHERE NOT EXISTS (SELECT 1 FROM items r WHERE r.tenant = :tenant AND r.item_id = s.item_id) LIMIT 1)
    UNION ALL
    (SELECT 3, 'unit_children', 'child', 'unit', s.child
     FROM stage_unit_children s WHERE NOT EXISTS (SELECT 1 FROM units r WHERE r.tenant = :tenant AND r.unit_id = s.child) LIMIT 1)
    UNION ALL
    (SELECT 4, 'unit_children', 'parent', 'unit', s.parent
     FROM stage_unit_children s WHERE NOT EXISTS (SELECT 1 FROM units r WHERE r.tenant = :tenant AND r.unit_id = s.parent) LIMIT 1)
) dangling
ORDER BY n
LIMIT 1;

-- name: merge_stage_unit_children
-- Add the staged parent-child links not stored yet (a unit is never its own child); the row count is the links new.
INSERT INTO unit_children (tenant, parent, child)
SELECT DISTINCT :tenant, parent, child FROM stage_unit_children WHERE parent <> child
ON CONFLICT DO NOTHING;

-- name: merge_stage_unit_items
-- Add the staged unit-item links not stored yet (one staged position per link); the row count is the links new.
-- A stored link keeps its position: an import adds links, it does not reorder units.
INSERT INTO unit_items (tenant, unit_id, item_id, position)
SELECT DISTINCT ON (unit_id, item_id) :tenant, unit_id, item_id, position FROM stage_unit_items
ORDER BY unit_id, item_id
ON CONFLICT DO NOTHING;

-- name: merge_stage_interactions
-- Add the staged interactions whose event_id is not stored yet; the row count is the interactions new.
-- In time order, so ids grow with time as they do from live ingest (queries break time ties by id).
INSERT INTO interactions (tenant, event_id, user_id, item_id, kind, outcome, value, duration_ms,
                          response, occurred_at)
SELECT :tenant, event_id, user_id, item_id, kind, outcome, value, duration_ms, response, occurred_at
FROM stage_interactions
ORDER BY occurred_at
ON CONFLICT (tenant, user_id, event_id) DO NOTHING;

-- name: unit_generator
-- The `generator` attribute of unit :unit_id (NULL when it has none, no row when there is no such unit): which demo made it.
SELECT attrs -> 'generator' AS generator FROM units WHERE tenant = :tenant AND unit_id = :unit_id;

-- name: interactions_rebuildable
-- The interactions table's non-unique indexes and foreign keys, as DDL (a bulk import drops them
-- and builds them again from these definitions after its insert: app-independent of migrations).
SELECT 'index' AS kind, i.relname AS name, pg_get_indexdef(i.oid) AS definition
FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
WHERE x.indrelid = 'interactions'::regclass AND NOT x.indisunique
UNION ALL
SELECT 'foreign key', c.conname, pg_get_constraintdef(c.oid)
FROM pg_constraint c
WHERE c.conrelid = 'interactions'::regclass AND c.contype = 'f'
ORDER BY 1, 2;

-- name: merge_stage_interactions_bulk
-- merge_stage_interactions for a bulk import (Loader(bulk=True)): in learner then event order, so
-- the keys that start with the learner (the primary key, the idempotency key) are appended to
-- rather than written all over; a learner's ids still grow with time when event ids sort by time.
INSERT INTO interactions (tenant, event_id, user_id, item_id, kind, outcome, value, duration_ms,
                          response, occurred_at)
SELECT :tenant, event_id, user_id, item_id, kind, outcome, value, duration_ms, response, occurred_at
FROM stage_interactions
ORDER BY user_id, occurred_at, event_id
ON CONFLICT (tenant, user_id, event_id) DO NOTHING;

-- name: interactions_empty
-- Whether no tenant has any interaction yet (a fresh database: a bulk load locks nobody out).
SELECT NOT EXISTS (SELECT 1 FROM interactions) AS empty;
