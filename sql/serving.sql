-- The request path: catalogue version, model choice, history, the log, trending, experiments.

-- name: catalog_version
-- The version of the tenant's catalogue, bumped by any change to its items or unit hierarchy.
SELECT version FROM catalog_state WHERE tenant = :tenant;

-- name: nearest_active_models
-- Active models of :objective / :tag on :unit_ids or any unit above them, nearest first.
WITH RECURSIVE above (unit_id, depth) AS (
    -- seed: the requested units themselves (depth 0)
    SELECT unit_id, 0 FROM units WHERE tenant = :tenant AND unit_id = ANY(:unit_ids)
    UNION
    -- step: the parents of units reached so far, one level up
    SELECT c.parent, a.depth + 1 FROM above a JOIN unit_children c ON c.tenant = :tenant AND c.child = a.unit_id
    -- cycle guard: a cycle revisits units at growing depths; no useful path is longer than 64
    WHERE a.depth < 64
)
SELECT m.model_id, m.unit_id, min(a.depth) AS depth
FROM above a JOIN models m ON m.tenant = :tenant AND m.unit_id = a.unit_id
WHERE m.status = 'active' AND m.objective = :objective AND m.tag = :tag
GROUP BY m.model_id, m.unit_id
ORDER BY min(a.depth), m.unit_id
LIMIT 1;

-- name: nearest_active_model_of_each
-- For each of :unit_ids, its nearest active model of :objective / :tag at or above it (the same
-- rule as nearest_active_models, one answer per unit; a unit with none is absent): what the
-- knowledge of many units at once needs, in one query instead of one per unit.
WITH RECURSIVE above (start, unit_id, depth) AS (
    SELECT unit_id, unit_id, 0 FROM units WHERE tenant = :tenant AND unit_id = ANY(:unit_ids)
    UNION
    SELECT a.start, c.parent, a.depth + 1 FROM above a JOIN unit_children c ON c.tenant = :tenant AND c.child = a.unit_id
    WHERE a.depth < 64
)
SELECT DISTINCT ON (a.start) a.start AS unit_id, m.model_id
FROM above a JOIN models m ON m.tenant = :tenant AND m.unit_id = a.unit_id
WHERE m.status = 'active' AND m.objective = :objective AND m.tag = :tag
ORDER BY a.start, a.depth, m.unit_id;

-- name: user_recent_interactions
-- The user's most recent :limit interactions, newest first (the history cache's source), each as
-- the cache's entry: the JSON array [item_id, kind, outcome, value, occurred_at] (app/catalogue/history.py).
SELECT json_build_array(item_id, kind, outcome, value, occurred_at)::text AS entry
FROM interactions
WHERE tenant = :tenant AND user_id = :user_id
ORDER BY occurred_at DESC, id DESC
LIMIT :limit;

-- name: users_recent_interactions
-- user_recent_interactions of each of :user_ids in one query (a job walking many learners): per
-- user, the entries newest first.
SELECT u.user_id,
       array(SELECT json_build_array(i.item_id, i.kind, i.outcome, i.value, i.occurred_at)::text
             FROM interactions i
             WHERE i.tenant = :tenant AND i.user_id = u.user_id
             ORDER BY i.occurred_at DESC, i.id DESC
             LIMIT :limit) AS entries
FROM unnest(:user_ids::text[]) AS u(user_id);

-- name: item_success_rates
-- Attempts and correct answers per item among :item_ids (the no-model fallback's estimate).
SELECT item_id, count(*) AS attempts, count(*) FILTER (WHERE outcome = 1) AS correct
FROM interactions
WHERE tenant = :tenant AND item_id = ANY(:item_ids) AND kind = 'attempt'
GROUP BY item_id;

-- name: insert_recommendation_logs
-- Record buffered answers (app/serving/recommendation_log.py): :rows is a JSON array of objects with the
-- columns below, created_at the time of the answer. Rows of a tenant removed meanwhile are skipped.
-- Not an acknowledged write: the transaction commits without waiting for the WAL flush.
SET LOCAL synchronous_commit = off;
INSERT INTO recommendation_log (tenant, request_id, user_id, units, experiment, variant, strategy, model_id, fallback,
                                history_rows, item_ids, scores, created_at)
SELECT r.tenant, r.request_id, r.user_id,
       ARRAY(SELECT u FROM jsonb_array_elements_text(r.units) WITH ORDINALITY AS e(u, k) ORDER BY k),
       r.experiment, r.variant, r.strategy, r.model_id, r.fallback, r.history_rows,
       ARRAY(SELECT i FROM jsonb_array_elements_text(r.item_ids) WITH ORDINALITY AS e(i, k) ORDER BY k),
       ARRAY(SELECT s::real FROM jsonb_array_elements_text(r.scores) WITH ORDINALITY AS e(s, k) ORDER BY k),
       r.created_at
FROM jsonb_to_recordset(:rows::jsonb) AS r(tenant text, request_id text, user_id text, units jsonb, experiment text,
                                           variant text, strategy text, model_id bigint, fallback text,
                                           history_rows integer, item_ids jsonb, scores jsonb, created_at timestamptz)
WHERE r.tenant IN (SELECT tenant FROM tenants);

-- name: trending
-- Most-interacted active items in the last :days days before :now, each event weighted by
-- exp(-age / half_life_days) so recent activity counts more; optionally only items in :item_ids.
SELECT i.item_id,
       -- float8, not numeric: extract() answers numeric, and numeric exp() costs 3x on a big window
       sum(exp(-extract(epoch FROM (:now - i.occurred_at))::float8 / 86400.0 / :half_life_days)) AS score,
       count(*) AS interactions,
       count(DISTINCT i.user_id) AS users
FROM interactions i
JOIN items it ON it.tenant = i.tenant AND it.item_id = i.item_id AND it.active
WHERE i.tenant = :tenant AND i.occurred_at > :now - make_interval(days => :days) AND i.occurred_at <= :now
  AND (:all_items OR i.item_id = ANY(:item_ids))
GROUP BY i.item_id
ORDER BY score DESC, i.item_id
LIMIT :n;

-- name: upsert_experiment
-- Create an experiment, or replace the variants of an existing one (and reactivate it).
INSERT INTO experiments (tenant, name, description, variants, active)
VALUES (:tenant, :experiment, :description, :variants::jsonb, true)
ON CONFLICT (tenant, name) DO UPDATE SET description = EXCLUDED.description, variants = EXCLUDED.variants,
    active = true, stopped_at = NULL
RETURNING name, description, variants, active, created_at, stopped_at;

-- name: get_experiment
-- One experiment.
SELECT name, description, variants, active, created_at, stopped_at FROM experiments
WHERE tenant = :tenant AND name = :experiment;

-- name: list_experiments
-- All experiments, newest first.
SELECT name, description, variants, active, created_at, stopped_at FROM experiments
WHERE tenant = :tenant ORDER BY created_at DESC;

-- name: stop_experiment
-- Stop routing users to an experiment's variants.
UPDATE experiments SET active = false, stopped_at = coalesce(stopped_at, now())
WHERE tenant = :tenant AND name = :experiment
RETURNING name, description, variants, active, created_at, stopped_at;

-- name: user_attrs
-- The learner's metadata (a hybrid model's prior for a learner it has not trained on).
SELECT attrs FROM users WHERE tenant = :tenant AND user_id = :user_id;

-- name: items_metadata
-- Kind, attrs and direct units of :item_ids (a hybrid model builds vectors for items newer than it).
SELECT i.item_id, i.kind, i.attrs,
       array(SELECT ui.unit_id FROM unit_items ui WHERE ui.tenant = i.tenant AND ui.item_id = i.item_id
             ORDER BY ui.unit_id) AS units
FROM items i
WHERE i.tenant = :tenant AND i.item_id = ANY(:item_ids);

-- name: popular_items
-- Active items (of :item_ids, or all when :all_items) by their positive engagements in tenant :tenant (any event but attempts, not marked 0, value above 0): the answer for a user nothing is known of.
SELECT i.item_id, count(*)::float8 AS score
FROM interactions i
JOIN items it ON it.tenant = i.tenant AND it.item_id = i.item_id AND it.active
WHERE i.tenant = :tenant AND i.kind <> 'attempt' AND coalesce(i.outcome, 1) = 1 AND coalesce(i.value, 1) > 0
  AND (:all_items OR i.item_id = ANY(:item_ids))
GROUP BY i.item_id
ORDER BY score DESC, i.item_id
LIMIT :n;

-- name: user_positive_items
-- The items the user :user_id engaged with positively, over their whole history (the cached one
-- stops at 500 events). Not filtered by candidates here: a 5,000-id ANY() is compared with every
-- row of the user (18 ms); the caller keeps the candidates among them.
SELECT DISTINCT item_id
FROM interactions
WHERE tenant = :tenant AND user_id = :user_id
  AND kind <> 'attempt' AND coalesce(outcome, 1) = 1 AND coalesce(value, 1) > 0;

-- name: user_items_touched
-- Per item the user :user_id touched at or before :until (where their cached history starts):
-- the last interaction then (kind, outcome, time) and whether they had solved it. Not filtered by
-- candidates (see user_positive_items).
SELECT DISTINCT ON (item_id) item_id, kind, outcome, occurred_at,
       bool_or(kind = 'attempt' AND outcome = 1) OVER (PARTITION BY item_id) AS solved
FROM interactions
WHERE tenant = :tenant AND user_id = :user_id AND occurred_at <= :until
ORDER BY item_id, occurred_at DESC, id DESC;

-- name: practice_models_of_items
-- (item_id, model_id) for each of :item_ids and each active practice model (any tag) of a unit
-- the item is in or below: the models whose belief about the item an attempt at it moves
-- (app/serving/item_learning.py).
WITH RECURSIVE above (item_id, unit_id, depth) AS (
    SELECT ui.item_id, ui.unit_id, 0 FROM unit_items ui WHERE ui.tenant = :tenant AND ui.item_id = ANY(:item_ids)
    UNION
    SELECT a.item_id, c.parent, a.depth + 1 FROM above a JOIN unit_children c ON c.tenant = :tenant AND c.child = a.unit_id
    WHERE a.depth < 64
)
SELECT DISTINCT a.item_id, m.model_id
FROM above a JOIN models m ON m.tenant = :tenant AND m.unit_id = a.unit_id
WHERE m.status = 'active' AND m.objective = 'practice'
ORDER BY a.item_id, m.model_id;

-- name: active_model_ids
-- The tenant's active models (any objective and tag), in id order: with the catalogue version,
-- what the answers of nearest_active_models and practice_models_of_items depend on
-- (app/serving/model_cache.py keeps them while both hold).
SELECT model_id FROM models WHERE tenant = :tenant AND status = 'active' ORDER BY model_id;
