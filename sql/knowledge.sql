-- What a learner knows (app/serving/knowledge.py: GET /v1/users/{user_id}/knowledge, the mastery and
-- review strategies) and its nightly snapshot for analysts (jobs/knowledge.py).

-- name: knowledge_units
-- Every unit reachable from :unit_ids (themselves included), each once, with its attrs, its
-- children in id order (the hierarchy's order) and its direct items (all, and the active ones).
WITH RECURSIVE reachable (unit_id) AS (
    -- seed: the requested units themselves
    SELECT unit_id FROM units WHERE tenant = :tenant AND unit_id = ANY(:unit_ids)
    UNION
    -- step: the children of every unit reached so far
    SELECT c.child FROM reachable r JOIN unit_children c ON c.tenant = :tenant AND c.parent = r.unit_id
    -- cycle guard: UNION (not UNION ALL) drops a unit already reached, so a cycle or a diamond adds
    -- no row; the walk stops when a step reaches nothing new (there are finitely many units).
)
SELECT u.unit_id, u.attrs,
       array(SELECT c.child FROM unit_children c WHERE c.tenant = u.tenant AND c.parent = u.unit_id
             ORDER BY c.child) AS children,
       array(SELECT ui.item_id FROM unit_items ui WHERE ui.tenant = u.tenant AND ui.unit_id = u.unit_id
             ORDER BY ui.item_id) AS items,
       array(SELECT ui.item_id FROM unit_items ui JOIN items i ON i.tenant = ui.tenant AND i.item_id = ui.item_id
             WHERE ui.tenant = u.tenant AND ui.unit_id = u.unit_id AND i.active ORDER BY ui.item_id) AS active_items
FROM reachable r JOIN units u ON u.tenant = :tenant AND u.unit_id = r.unit_id
ORDER BY u.unit_id;

-- name: knowledge_ancestors
-- For each of :unit_ids, the units above it whose attrs hold "mastery" settings, with their
-- distance (its parents are 1), farthest first: the settings a unit inherits.
WITH RECURSIVE above (start, unit_id, depth) AS (
    -- seed: the parents of each unit asked
    SELECT c.child, c.parent, 1 FROM unit_children c WHERE c.tenant = :tenant AND c.child = ANY(:unit_ids)
    UNION
    -- step: their parents, one level further up
    SELECT a.start, c.parent, a.depth + 1 FROM above a JOIN unit_children c ON c.tenant = :tenant AND c.child = a.unit_id
    -- cycle guard: a cycle revisits units at growing depths; no useful path is longer than 64
    WHERE a.depth < 64
)
SELECT a.start, a.unit_id, min(a.depth) AS depth, u.attrs
FROM above a JOIN units u ON u.tenant = :tenant AND u.unit_id = a.unit_id
WHERE u.attrs -> 'mastery' IS NOT NULL
GROUP BY a.start, a.unit_id, u.attrs
ORDER BY a.start, min(a.depth) DESC, a.unit_id DESC;

-- name: user_item_attempts
-- Per item the learner :user_id attempted (whole history): attempts, correct answers, the last
-- attempt's time, and the units holding the item directly (the learner's practised skills).
-- (One join and one grouping, not a sub-select per item: that took ~20 ms for a learner of a few
-- hundred items.)
SELECT a.item_id, a.attempts, a.correct, a.last_at,
       coalesce(array_agg(ui.unit_id ORDER BY ui.unit_id) FILTER (WHERE ui.unit_id IS NOT NULL), '{}') AS units
FROM (SELECT item_id, count(*) AS attempts, count(*) FILTER (WHERE outcome = 1) AS correct,
             max(occurred_at) AS last_at
      FROM interactions
      WHERE tenant = :tenant AND user_id = :user_id AND kind = 'attempt' AND outcome IS NOT NULL
      GROUP BY item_id) a
LEFT JOIN unit_items ui ON ui.tenant = :tenant AND ui.item_id = a.item_id
GROUP BY a.item_id, a.attempts, a.correct, a.last_at
ORDER BY a.item_id;

-- name: user_item_counts
-- user_item_attempts without the units (the caller named the units: no lookup per item).
SELECT item_id, count(*) AS attempts, count(*) FILTER (WHERE outcome = 1) AS correct, max(occurred_at) AS last_at
FROM interactions
WHERE tenant = :tenant AND user_id = :user_id AND kind = 'attempt' AND outcome IS NOT NULL
GROUP BY item_id;

-- name: snapshot_learners
-- Up to :limit learners of the tenant with at least one attempt, after :after in id order (the
-- snapshot job's batches, keyset-paginated).
SELECT u.user_id FROM users u
WHERE u.tenant = :tenant AND u.user_id > :after
  AND EXISTS (SELECT 1 FROM interactions i WHERE i.tenant = u.tenant AND i.user_id = u.user_id AND i.kind = 'attempt')
ORDER BY u.user_id
LIMIT :limit;

-- name: snapshot_practised_units
-- Per learner of :user_ids with attempts, the units holding an item they attempted (what
-- user_item_attempts's units come to, for a batch of the snapshot job in one query).
SELECT a.user_id, array_agg(DISTINCT ui.unit_id) AS units
FROM interactions a JOIN unit_items ui ON ui.tenant = a.tenant AND ui.item_id = a.item_id
WHERE a.tenant = :tenant AND a.user_id = ANY(:user_ids) AND a.kind = 'attempt' AND a.outcome IS NOT NULL
GROUP BY a.user_id;

-- name: insert_knowledge_snapshot
-- One batch of snapshot rows from parallel arrays, all as of :as_of; a re-run of the same as_of replaces them.
INSERT INTO knowledge_snapshots (tenant, user_id, unit_id, as_of, p, low, high, mastered, attempts, correct,
                                 last_practised, due)
SELECT :tenant, u, un, :as_of, p, lo, hi, m, a, c, lp, d
FROM unnest(:user_ids::text[], :unit_ids::text[], :ps::real[], :lows::real[], :highs::real[], :mastered::boolean[],
            :attempts::int[], :correct::int[], :last_practised::timestamptz[], :due::timestamptz[])
     AS x(u, un, p, lo, hi, m, a, c, lp, d)
ON CONFLICT (tenant, user_id, unit_id, as_of) DO UPDATE
SET p = EXCLUDED.p, low = EXCLUDED.low, high = EXCLUDED.high, mastered = EXCLUDED.mastered,
    attempts = EXCLUDED.attempts, correct = EXCLUDED.correct, last_practised = EXCLUDED.last_practised,
    due = EXCLUDED.due;

-- name: delete_knowledge_snapshots_before
-- Forget the tenant's snapshots taken before :before (the snapshot job's retention).
DELETE FROM knowledge_snapshots WHERE tenant = :tenant AND as_of < :before;
