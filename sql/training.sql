-- Training data and model storage for the daily job (jobs/train.py).

-- name: unit_candidates
-- Per unit: items under it, how many of them have engagement events, and the attempts / engagement events on them (to pick model units).
WITH RECURSIVE descend (top, unit_id) AS (
    -- seed: every unit is its own top
    SELECT unit_id, unit_id FROM units WHERE tenant = :tenant
    UNION
    -- step: a top reaches the children of every unit it reaches; UNION drops (top, unit) pairs
    -- already found, so cycles and diamonds add nothing and the walk ends
    SELECT d.top, c.child FROM descend d JOIN unit_children c ON c.tenant = :tenant AND c.parent = d.unit_id
),
item_counts AS (
    SELECT item_id,
           count(*) FILTER (WHERE kind = 'attempt') AS attempts,
           count(*) FILTER (WHERE kind <> 'attempt') AS engagements
    FROM interactions WHERE tenant = :tenant GROUP BY item_id
),
unit_item AS (
    SELECT DISTINCT d.top, ui.item_id FROM descend d JOIN unit_items ui ON ui.tenant = :tenant AND ui.unit_id = d.unit_id
)
SELECT u.unit_id, u.kind, u.attrs,
       count(ui.item_id) AS items,
       count(ui.item_id) FILTER (WHERE ic.engagements > 0) AS engaged_items,
       coalesce(sum(ic.attempts), 0)::bigint AS attempts,
       coalesce(sum(ic.engagements), 0)::bigint AS engagements
FROM units u
LEFT JOIN unit_item ui ON ui.top = u.unit_id
LEFT JOIN item_counts ic ON ic.item_id = ui.item_id
WHERE u.tenant = :tenant
GROUP BY u.unit_id, u.kind, u.attrs
ORDER BY u.unit_id;

-- name: unit_items_for_training
-- Every item under :unit_id (active or not) with its metadata and direct units.
WITH RECURSIVE reachable (unit_id) AS (
    -- seed: the unit; step: its children; UNION drops repeats, so cycles end the walk
    SELECT unit_id FROM units WHERE tenant = :tenant AND unit_id = :unit_id
    UNION
    SELECT c.child FROM reachable r JOIN unit_children c ON c.tenant = :tenant AND c.parent = r.unit_id
)
SELECT i.item_id, i.kind, i.title, i.body, i.attrs, i.active,
       array(SELECT ui2.unit_id FROM unit_items ui2 WHERE ui2.tenant = i.tenant AND ui2.item_id = i.item_id
             ORDER BY ui2.unit_id) AS units
FROM items i
WHERE i.tenant = :tenant
  AND i.item_id IN (SELECT ui.item_id FROM reachable r JOIN unit_items ui ON ui.tenant = :tenant AND ui.unit_id = r.unit_id)
ORDER BY i.item_id;

-- name: first_attempts_on_items
-- Each user's first attempt at each of :item_ids, grouped by user, in time order; only the learners of a hash sample of share :share (1: all) when the unit is bigger than the job trains on.
SELECT user_id, item_id, outcome, extract(epoch FROM occurred_at)::float8 AS at
FROM (
    SELECT DISTINCT ON (a.user_id, a.item_id) a.user_id, a.item_id, a.outcome, a.occurred_at, a.id
    FROM interactions a
    WHERE a.tenant = :tenant AND a.kind = 'attempt' AND a.item_id = ANY(:item_ids) AND a.outcome IS NOT NULL
      AND (:share >= 1.0 OR (hashtext(a.user_id) & 1048575) < :share * 1048576)
    ORDER BY a.user_id, a.item_id, a.occurred_at, a.id
) first
ORDER BY user_id, occurred_at, id;

-- name: attempts_of_users_on_items
-- Every attempt (repeats included) of :user_ids at :item_ids, grouped by user, in time order: the
-- sequences the service sees, replayed to fit the retry and learning terms of a practice model's
-- calibration (their times: practice and time away).
SELECT user_id, item_id, outcome, extract(epoch FROM occurred_at)::float8 AS at
FROM interactions
WHERE tenant = :tenant AND kind = 'attempt' AND user_id = ANY(:user_ids) AND item_id = ANY(:item_ids) AND outcome IS NOT NULL
ORDER BY user_id, occurred_at, id;

-- name: positive_engagements_on_items
-- (user, item) pairs with a positive engagement on any of :item_ids: any event except attempts
-- whose outcome is not 0 and whose value, if given, is above :min_value.
SELECT user_id, item_id, max(occurred_at) AS last_at
FROM interactions
WHERE tenant = :tenant AND kind <> 'attempt' AND item_id = ANY(:item_ids)
  AND coalesce(outcome, 1) = 1 AND coalesce(value, 1) > :min_value
GROUP BY user_id, item_id
ORDER BY user_id, item_id;

-- name: users_attrs
-- Metadata of the users :user_ids.
SELECT user_id, attrs FROM users WHERE tenant = :tenant AND user_id = ANY(:user_ids);

-- name: attempts_on_items
-- How many attempts (repeats included) :item_ids have: whether a unit is over the job's cap.
SELECT count(*) AS attempts FROM interactions
WHERE tenant = :tenant AND kind = 'attempt' AND item_id = ANY(:item_ids) AND outcome IS NOT NULL;
