-- 002: read-only views for analysts (see sql/README.md). Plain views, computed when queried:
-- they always agree with the tables and cost nothing to keep. Days are UTC days, whatever the
-- session's TimeZone, so two analysts get the same numbers.

-- Every path from a root (a unit that is nobody's child) down to each unit. A unit reachable
-- along two routes (a section in its chapter and in a Review chapter) has two rows. Units on a
-- cycle that no root reaches have no root-to-unit path, so they have no row.
CREATE VIEW unit_paths AS
WITH RECURSIVE walk (unit_id, root_id, depth, path_ids, path_names) AS (
    -- seed: each root starts a path of its own
    SELECT u.unit_id, u.unit_id, 0, ARRAY[u.unit_id], ARRAY[coalesce(u.name, u.unit_id)]
    FROM units u
    WHERE NOT EXISTS (SELECT 1 FROM unit_children c WHERE c.child = u.unit_id)
    UNION ALL
    -- recursive step: extend every path by one child of its last unit. UNION ALL, because two
    -- paths to the same unit are different rows we want to keep.
    SELECT c.child, w.root_id, w.depth + 1, w.path_ids || c.child, w.path_names || coalesce(u.name, u.unit_id)
    FROM walk w
    JOIN unit_children c ON c.parent = w.unit_id
    JOIN units u ON u.unit_id = c.child
    -- cycle guard: never step onto a unit already on this path. So every path is a list of
    -- distinct units, no longer than the number of units; there are finitely many such lists,
    -- so the walk stops (a step that only meets units already on its path adds no row).
    WHERE NOT c.child = ANY (w.path_ids)
)
SELECT unit_id,
       root_id,
       depth,                                             -- 0 for a root
       path_ids,                                          -- {root, ..., unit}
       array_to_string(path_names, ' > ') AS path         -- 'Root > Subject > Unit' (names, else ids)
FROM walk;

COMMENT ON VIEW unit_paths IS 'Every root-to-unit path of the unit DAG: ids as text[], names as ''A > B > C''.';


-- Attempts with the item title and every unit path the item sits under. The paths are
-- aggregated per item first (a few thousand items), then joined, so scanning the whole
-- history does not re-walk the hierarchy per attempt.
CREATE VIEW attempt_history AS
SELECT i.id,
       i.event_id,
       i.user_id,
       i.item_id,
       it.title AS item_title,
       i.outcome,                                         -- 1 correct, 0 wrong
       i.duration_ms,
       i.occurred_at,
       coalesce(p.unit_paths, '{}') AS unit_paths         -- text[] of 'A > B > C', sorted
FROM interactions i
JOIN items it ON it.item_id = i.item_id
LEFT JOIN (
    SELECT ui.item_id, array_agg(DISTINCT up.path ORDER BY up.path) AS unit_paths
    FROM unit_items ui
    JOIN unit_paths up ON up.unit_id = ui.unit_id
    GROUP BY ui.item_id
) p ON p.item_id = i.item_id
WHERE i.kind = 'attempt';

COMMENT ON VIEW attempt_history IS 'Attempts with user, item title, outcome, time and the item''s unit paths.';


-- One row per item, including items nobody has touched (zeros, NULL rates and times).
CREATE VIEW item_stats AS
SELECT it.item_id,
       it.kind,
       it.title,
       it.active,
       coalesce(s.attempts, 0) AS attempts,
       coalesce(s.learners, 0) AS learners,               -- distinct users who attempted it
       s.success_rate,                                    -- share of attempts correct, 4 decimals
       s.first_attempt,
       s.last_attempt,
       coalesce(s.views, 0) AS views,
       coalesce(s.likes, 0) AS likes,
       coalesce(s.completions, 0) AS completions,
       coalesce(s.users, 0) AS users                      -- distinct users with any interaction
FROM items it
LEFT JOIN (
    SELECT item_id,
           count(*) FILTER (WHERE kind = 'attempt') AS attempts,
           count(DISTINCT user_id) FILTER (WHERE kind = 'attempt') AS learners,
           round(avg(outcome) FILTER (WHERE kind = 'attempt'), 4) AS success_rate,
           min(occurred_at) FILTER (WHERE kind = 'attempt') AS first_attempt,
           max(occurred_at) FILTER (WHERE kind = 'attempt') AS last_attempt,
           count(*) FILTER (WHERE kind = 'view') AS views,
           count(*) FILTER (WHERE kind = 'like') AS likes,
           count(*) FILTER (WHERE kind = 'complete') AS completions,
           count(DISTINCT user_id) AS users
    FROM interactions
    GROUP BY item_id
) s ON s.item_id = it.item_id;

COMMENT ON VIEW item_stats IS 'Per item: attempts, learners, success rate, first/last attempt, views, likes, completions.';


-- One row per user, including users with no interactions yet.
CREATE VIEW user_activity AS
SELECT u.user_id,
       coalesce(s.interactions, 0) AS interactions,
       coalesce(s.attempts, 0) AS attempts,
       s.success_rate,                                    -- share of attempts correct, 4 decimals
       coalesce(s.distinct_items, 0) AS distinct_items,   -- items with any interaction
       coalesce(s.active_days, 0) AS active_days,         -- distinct UTC days with any interaction
       s.first_seen,
       s.last_seen
FROM users u
LEFT JOIN (
    SELECT user_id,
           count(*) AS interactions,
           count(*) FILTER (WHERE kind = 'attempt') AS attempts,
           round(avg(outcome) FILTER (WHERE kind = 'attempt'), 4) AS success_rate,
           count(DISTINCT item_id) AS distinct_items,
           count(DISTINCT (occurred_at AT TIME ZONE 'UTC')::date) AS active_days,
           min(occurred_at) AS first_seen,
           max(occurred_at) AS last_seen
    FROM interactions
    GROUP BY user_id
) s ON s.user_id = u.user_id;

COMMENT ON VIEW user_activity IS 'Per user: interactions, attempts, success rate, distinct items, active days, first/last seen.';


-- One row per UTC day and interaction kind that has any interaction.
CREATE VIEW daily_volume AS
SELECT (occurred_at AT TIME ZONE 'UTC')::date AS day,
       kind,
       count(*) AS interactions,
       count(DISTINCT user_id) AS users
FROM interactions
GROUP BY 1, 2;

COMMENT ON VIEW daily_volume IS 'Per UTC day and kind: interactions and distinct users.';
