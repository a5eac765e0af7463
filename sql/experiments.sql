-- Experiments judged by learning (issue 27): versions of an experiment's variants, and what
-- GET /v1/experiments/{name}/results reads of a version (app/serving/experiment_results.py).
-- The exposures and attempts come from the analysts' views of migration 011, so the endpoint and
-- an analyst read the same rows.

-- name: record_experiment_version
-- A new version of :experiment holding :variants, when it has none yet or its latest version's
-- variants differ (a PUT with the same variants, such as a restart, keeps the version).
INSERT INTO experiment_versions (tenant, name, version, variants)
SELECT :tenant, :experiment, coalesce(max(v.version), 0) + 1, :variants::jsonb
FROM experiment_versions v
WHERE v.tenant = :tenant AND v.name = :experiment
HAVING coalesce((array_agg(v.variants ORDER BY v.version DESC))[1] <> :variants::jsonb, true)
ON CONFLICT (tenant, name, version) DO NOTHING
RETURNING version;

-- name: experiment_version_list
-- The versions of :experiment, oldest first, each with its window [started_at, ended_at).
SELECT version, variants, started_at,
       lead(started_at) OVER (ORDER BY version) AS ended_at
FROM experiment_versions
WHERE tenant = :tenant AND name = :experiment
ORDER BY version;

-- name: experiment_version_exposures
-- The learners of :experiment's :version: the variant of their first answer in it, answers logged.
SELECT user_id, variant, answers, variants_seen
FROM experiment_exposures
WHERE tenant = :tenant AND experiment = :experiment AND version = :version
ORDER BY user_id;

-- name: experiment_version_attempts
-- Every attempt of :experiment's :version's learners since they joined, learner by learner, oldest first.
-- Its three window sorts of every attempt fit in memory at 200,000 attempts with 64 MB (the default
-- 4 MB spills them to disk); SET LOCAL ends with the transaction.
SET LOCAL work_mem = '64MB';
SELECT user_id, item_id, unit_id, first_at_item, outcome, opportunity, days_away
FROM experiment_attempts
WHERE tenant = :tenant AND experiment = :experiment AND version = :version
ORDER BY user_id, occurred_at, interaction_id;

-- name: experiment_version_calibration
-- Per learner: the recommendations of :experiment logged in [:started_at, :ended_at) with a
-- predicted p whose item they attempted within 24 hours (prediction_outcomes' pairing rule), the
-- sum of outcome - p and their number.
SELECT user_id, sum(outcome - p) AS residual, count(*) AS paired
FROM prediction_outcomes(:started_at, :ended_at, interval '24 hours')
WHERE tenant = :tenant AND experiment = :experiment AND p IS NOT NULL
GROUP BY user_id;

-- name: experiment_units
-- The units named by :experiment's answers logged in [:started_at, :ended_at).
SELECT DISTINCT u.unit_id
FROM recommendation_log r CROSS JOIN LATERAL unnest(r.units) AS u (unit_id)
WHERE r.tenant = :tenant AND r.experiment = :experiment AND r.created_at >= :started_at AND r.created_at < :ended_at;

-- name: experiment_frozen_models
-- For each of :unit_ids and every unit above it (nearest first): the practice model of the
-- default tag that was active at :at (the latest activated at or before it), else the first one
-- activated after it: the yardstick of item difficulty, frozen at the experiment's start.
WITH RECURSIVE above (start, unit_id, depth) AS (
    -- seed: the units themselves (depth 0)
    SELECT unit_id, unit_id, 0 FROM units WHERE tenant = :tenant AND unit_id = ANY(:unit_ids)
    UNION
    -- step: the parents of units reached so far, one level up
    SELECT a.start, c.parent, a.depth + 1 FROM above a JOIN unit_children c ON c.tenant = :tenant AND c.child = a.unit_id
    -- cycle guard: a cycle revisits units at growing depths; no useful path is longer than 64
    WHERE a.depth < 64
)
SELECT a.start, min(a.depth) AS depth, m.model_id
FROM above a
CROSS JOIN LATERAL (
    SELECT model_id FROM models
    WHERE tenant = :tenant AND unit_id = a.unit_id AND objective = 'practice' AND tag = 'default'
      AND activated_at IS NOT NULL
    ORDER BY activated_at <= :at DESC,                                      -- active then first
             CASE WHEN activated_at <= :at THEN activated_at END DESC,      -- the latest before
             activated_at                                                   -- else the oldest after
    LIMIT 1
) m
GROUP BY a.start, m.model_id
ORDER BY a.start, min(a.depth);

-- name: experiment_item_units
-- Each of :item_ids' skill: its first unit by id (as experiment_attempts gives it).
SELECT item_id, min(unit_id) AS unit_id FROM unit_items
WHERE tenant = :tenant AND item_id = ANY(:item_ids)
GROUP BY item_id;

-- name: experiment_unit_attrs
-- The attrs of :unit_ids (their own mastery settings).
SELECT unit_id, attrs FROM units WHERE tenant = :tenant AND unit_id = ANY(:unit_ids);
