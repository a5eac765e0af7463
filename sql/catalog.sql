-- Catalogue reads and writes: users, items, units and the unit hierarchy.

-- name: items_under_units
-- Active items under any of the units :unit_ids, each item once, through the whole unit DAG.
WITH RECURSIVE reachable (unit_id) AS (
    -- seed: the requested units themselves
    SELECT unit_id FROM units WHERE tenant = :tenant AND unit_id = ANY(:unit_ids)
    UNION
    -- step: the children of every unit reached so far
    SELECT c.child
    FROM reachable r
    JOIN unit_children c ON c.tenant = :tenant AND c.parent = r.unit_id
    -- cycle guard: UNION (not UNION ALL) drops a unit already reached, so a cycle or a
    -- diamond adds no new row; the walk stops when a step reaches nothing new, which must
    -- happen because there are finitely many units.
)
SELECT DISTINCT i.item_id
FROM reachable r
JOIN unit_items ui ON ui.tenant = :tenant AND ui.unit_id = r.unit_id
JOIN items i ON i.tenant = :tenant AND i.item_id = ui.item_id
WHERE i.active
ORDER BY i.item_id;

-- name: units_under_units
-- Every unit reachable from :unit_ids (themselves included), each once, cycles guarded.
WITH RECURSIVE reachable (unit_id) AS (
    -- seed: the requested units
    SELECT unit_id FROM units WHERE tenant = :tenant AND unit_id = ANY(:unit_ids)
    UNION
    -- step: children of units reached so far; UNION drops repeats, so cycles end the walk
    SELECT c.child FROM reachable r JOIN unit_children c ON c.tenant = :tenant AND c.parent = r.unit_id
)
SELECT unit_id FROM reachable ORDER BY unit_id;

-- name: units_above_unit
-- The unit :unit_id and every unit above it, nearest first (depth 0 is the unit itself).
WITH RECURSIVE above (unit_id, depth) AS (
    -- seed: the unit itself
    SELECT unit_id, 0 FROM units WHERE tenant = :tenant AND unit_id = :unit_id
    UNION
    -- step: the parents of units reached so far, one level further up
    SELECT c.parent, a.depth + 1
    FROM above a JOIN unit_children c ON c.tenant = :tenant AND c.child = a.unit_id
    -- cycle guard: a cycle would revisit units at ever larger depths, so depth is bounded
    -- by the number of units (a path without repeats is never longer than that).
    WHERE a.depth < (SELECT count(*) FROM units WHERE tenant = :tenant)
)
SELECT unit_id, min(depth) AS depth FROM above GROUP BY unit_id ORDER BY min(depth), unit_id;

-- name: cycle_through_units
-- A unit among :unit_ids that can reach itself through unit_children (a cycle), or nothing.
WITH RECURSIVE walk (start, unit_id) AS (
    -- seed: the direct children of each unit we changed
    SELECT parent, child FROM unit_children WHERE tenant = :tenant AND parent = ANY(:unit_ids)
    UNION
    -- step: descend one level; (start, unit) pairs are finite and UNION drops repeats, so it stops
    SELECT w.start, c.child FROM walk w JOIN unit_children c ON c.tenant = :tenant AND c.parent = w.unit_id
)
SELECT start AS unit_id FROM walk WHERE unit_id = start LIMIT 1;

-- name: existing_units
-- Which of :ids are units.
SELECT unit_id AS id FROM units WHERE tenant = :tenant AND unit_id = ANY(:ids);

-- name: existing_items
-- Which of :ids are items.
SELECT item_id AS id FROM items WHERE tenant = :tenant AND item_id = ANY(:ids);

-- name: upsert_users
-- Insert or update users from parallel arrays :user_ids and :attrs (JSON text).
INSERT INTO users (tenant, user_id, attrs)
SELECT :tenant, u, a::jsonb FROM unnest(:user_ids::text[], :attrs::text[]) AS t(u, a)
ON CONFLICT (tenant, user_id) DO UPDATE SET attrs = EXCLUDED.attrs, updated_at = now();

-- name: ensure_users
-- Create bare users for any of :user_ids not known yet (learners appear with their first event).
-- In id order, so concurrent batches naming the same new users lock them in one order (no deadlock).
INSERT INTO users (tenant, user_id)
SELECT DISTINCT :tenant, u FROM unnest(:user_ids::text[]) AS t(u)
ORDER BY u
ON CONFLICT (tenant, user_id) DO NOTHING;

-- name: upsert_items
-- Insert or update items from parallel arrays.
INSERT INTO items (tenant, item_id, kind, title, body, attrs, active)
SELECT :tenant, i, k, t, b, a::jsonb, act
FROM unnest(:item_ids::text[], :kinds::text[], :titles::text[], :bodies::text[],
            :attrs::text[], :actives::boolean[]) AS x(i, k, t, b, a, act)
ON CONFLICT (tenant, item_id) DO UPDATE
SET kind = EXCLUDED.kind, title = EXCLUDED.title, body = EXCLUDED.body,
    attrs = EXCLUDED.attrs, active = EXCLUDED.active, updated_at = now();

-- name: upsert_units
-- Insert or update units from parallel arrays.
INSERT INTO units (tenant, unit_id, name, kind, attrs)
SELECT :tenant, u, n, k, a::jsonb FROM unnest(:unit_ids::text[], :names::text[], :kinds::text[], :attrs::text[]) AS x(u, n, k, a)
ON CONFLICT (tenant, unit_id) DO UPDATE
SET name = EXCLUDED.name, kind = EXCLUDED.kind, attrs = EXCLUDED.attrs, updated_at = now();

-- name: delete_children
-- Forget the children of the units :unit_ids (before listing their new children).
DELETE FROM unit_children WHERE tenant = :tenant AND parent = ANY(:unit_ids);

-- name: insert_children
-- Add the edges parent -> child from parallel arrays :parents and :children.
INSERT INTO unit_children (tenant, parent, child)
SELECT :tenant, p, c FROM unnest(:parents::text[], :children::text[]) AS x(p, c)
ON CONFLICT DO NOTHING;

-- name: delete_unit_items
-- Forget the direct items of the units :unit_ids.
DELETE FROM unit_items WHERE tenant = :tenant AND unit_id = ANY(:unit_ids);

-- name: delete_item_units
-- Forget the unit memberships of the items :item_ids.
DELETE FROM unit_items WHERE tenant = :tenant AND item_id = ANY(:item_ids);

-- name: insert_unit_items
-- Put items in units from parallel arrays :unit_ids, :item_ids, :positions (position may be null).
INSERT INTO unit_items (tenant, unit_id, item_id, position)
SELECT :tenant, u, i, p FROM unnest(:unit_ids::text[], :item_ids::text[], :positions::int[]) AS x(u, i, p)
ON CONFLICT (tenant, unit_id, item_id) DO UPDATE SET position = EXCLUDED.position;

-- name: deactivate_item
-- Stop recommending item :item_id (its history stays).
UPDATE items SET active = false, updated_at = now() WHERE tenant = :tenant AND item_id = :item_id RETURNING item_id;

-- name: get_user
-- One user with the number of interactions recorded.
SELECT u.user_id, u.attrs,
       (SELECT count(*) FROM interactions i WHERE i.tenant = u.tenant AND i.user_id = u.user_id) AS interactions
FROM users u WHERE u.tenant = :tenant AND u.user_id = :user_id;

-- name: get_item
-- One item with the units it belongs to directly.
SELECT i.item_id, i.kind, i.title, i.body, i.attrs, i.active,
       coalesce(array(SELECT ui.unit_id FROM unit_items ui WHERE ui.tenant = i.tenant AND ui.item_id = i.item_id
                      ORDER BY ui.unit_id), '{}') AS units
FROM items i WHERE i.tenant = :tenant AND i.item_id = :item_id;

-- name: get_unit
-- One unit with its parents, children and direct items.
SELECT u.unit_id, u.name, u.kind, u.attrs,
       array(SELECT parent FROM unit_children WHERE tenant = u.tenant AND child = u.unit_id ORDER BY parent) AS parents,
       array(SELECT child FROM unit_children WHERE tenant = u.tenant AND parent = u.unit_id ORDER BY child) AS children,
       array(SELECT item_id FROM unit_items WHERE tenant = u.tenant AND unit_id = u.unit_id
             ORDER BY position NULLS LAST, item_id) AS items
FROM units u WHERE u.tenant = :tenant AND u.unit_id = :unit_id;

-- name: active_items
-- Which of :ids are active items.
SELECT item_id AS id FROM items WHERE tenant = :tenant AND item_id = ANY(:ids) AND active;

-- name: root_units
-- Units with no parent: the tops of the hierarchy.
SELECT unit_id FROM units u
WHERE u.tenant = :tenant
  AND NOT EXISTS (SELECT 1 FROM unit_children c WHERE c.tenant = u.tenant AND c.child = u.unit_id)
ORDER BY unit_id;
