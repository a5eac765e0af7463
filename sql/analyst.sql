-- Questions analysts ask of the history, as named queries (see sql/README.md for psql use).
-- They read the views of migration 002 and the tables; none of them writes.

-- name: unit_success_rates
-- For :unit_id and every unit below it: items under it (the whole sub-DAG), attempts at them and success rate, hardest first.
WITH RECURSIVE below (unit_id) AS (
    -- seed: the requested unit
    SELECT unit_id FROM units WHERE tenant = :tenant AND unit_id = :unit_id
    UNION
    -- step: the children of every unit reached so far
    SELECT c.child FROM below b JOIN unit_children c ON c.tenant = :tenant AND c.parent = b.unit_id
    -- cycle guard: UNION (not UNION ALL) drops a unit already reached, so a cycle or a diamond
    -- adds no row; the walk stops when a step finds nothing new (finitely many units).
),
reach (top_id, unit_id) AS (
    -- seed: every unit below :unit_id reaches itself
    SELECT unit_id, unit_id FROM below
    UNION
    -- step: and the children of whatever it reaches; UNION drops pairs already found, so this
    -- stops too (at most one row per pair of units)
    SELECT r.top_id, c.child FROM reach r JOIN unit_children c ON c.tenant = :tenant AND c.parent = r.unit_id
),
top_items AS (
    -- each item once per unit above it, however many routes lead there (inactive items too:
    -- their history still counts)
    SELECT DISTINCT r.top_id, ui.item_id FROM reach r JOIN unit_items ui ON ui.tenant = :tenant AND ui.unit_id = r.unit_id
),
per_item AS (
    -- attempts summed per item once, before fanning out to every unit above the item
    SELECT item_id, count(*) AS attempts, sum(outcome) AS correct
    FROM interactions
    WHERE tenant = :tenant AND kind = 'attempt' AND item_id IN (SELECT item_id FROM top_items)
    GROUP BY item_id
)
SELECT u.unit_id, u.name, u.kind,
       count(ti.item_id) AS items,
       coalesce(sum(p.attempts), 0) AS attempts,
       round(sum(p.correct)::numeric / nullif(sum(p.attempts), 0), 4) AS success_rate
FROM below b
JOIN units u ON u.tenant = :tenant AND u.unit_id = b.unit_id
LEFT JOIN top_items ti ON ti.top_id = b.unit_id
LEFT JOIN per_item p ON p.item_id = ti.item_id
GROUP BY u.unit_id, u.name, u.kind
ORDER BY success_rate NULLS LAST, u.unit_id;

-- name: user_history
-- The user :user_id's latest :limit attempts, newest first, with each item's unit paths.
SELECT occurred_at, item_id, item_title, outcome, duration_ms, unit_paths
FROM attempt_history
WHERE tenant = :tenant AND user_id = :user_id
ORDER BY occurred_at DESC, id DESC
LIMIT :limit;

-- name: hardest_items_under_unit
-- The :limit items under :unit_id (whole sub-DAG) with the lowest success rate among those with at least :min_attempts attempts.
WITH RECURSIVE below (unit_id) AS (
    -- seed: the requested unit
    SELECT unit_id FROM units WHERE tenant = :tenant AND unit_id = :unit_id
    UNION
    -- step: children of units reached so far; UNION drops repeats, so cycles end the walk
    SELECT c.child FROM below b JOIN unit_children c ON c.tenant = :tenant AND c.parent = b.unit_id
)
SELECT it.item_id, it.title, it.kind,
       count(*) AS attempts,
       count(DISTINCT a.user_id) AS learners,
       round(avg(a.outcome), 4) AS success_rate
FROM items it
JOIN interactions a ON a.tenant = it.tenant AND a.item_id = it.item_id AND a.kind = 'attempt'
WHERE it.tenant = :tenant
  AND it.item_id IN (SELECT ui.item_id FROM below b JOIN unit_items ui ON ui.tenant = :tenant AND ui.unit_id = b.unit_id)
GROUP BY it.item_id, it.title, it.kind
HAVING count(*) >= :min_attempts
ORDER BY success_rate, attempts DESC, it.item_id
LIMIT :limit;

-- name: item_paths
-- Every root-to-unit path above the item :item_id (one per route through the DAG).
SELECT ui.unit_id, up.depth, up.path_ids, up.path
FROM unit_items ui
JOIN unit_paths up ON up.tenant = ui.tenant AND up.unit_id = ui.unit_id
WHERE ui.tenant = :tenant AND ui.item_id = :item_id
ORDER BY up.path;
