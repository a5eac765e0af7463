-- Trained models: storage, atomic activation, listing, pruning.

-- name: insert_model
-- A new model version, not serving yet.
INSERT INTO models (tenant, unit_id, tag, objective, mode, status, hyperparams, metrics, data_counts, training_seconds)
VALUES (:tenant, :unit_id, :tag, :objective, :mode, 'ready', :hyperparams::jsonb, :metrics::jsonb, :data_counts::jsonb,
        :training_seconds)
RETURNING model_id;

-- name: insert_model_arrays
-- The packed float32 arrays of a model.
INSERT INTO model_arrays (model_id, dim, item_ids, item_vectors, item_biases, prior_mean, prior_cov, calibration,
                          extra, item_weights)
VALUES (:model_id, :dim, :item_ids, :item_vectors, :item_biases, :prior_mean, :prior_cov,
        :calibration::jsonb, :extra::jsonb, :item_weights);

-- name: retire_active_model_like
-- Retire the active model of the same unit, objective and tag as :model_id.
UPDATE models m SET status = 'retired'
FROM models n
WHERE n.model_id = :model_id AND m.status = 'active'
  AND m.tenant = n.tenant AND m.unit_id = n.unit_id AND m.objective = n.objective AND m.tag = n.tag AND m.model_id <> n.model_id;

-- name: activate_model
-- Make the ready model :model_id active.
UPDATE models SET status = 'active', activated_at = now()
WHERE tenant = :tenant AND model_id = :model_id AND status IN ('ready', 'retired')
RETURNING model_id;

-- name: fail_model
-- Record why a stored model was not activated.
UPDATE models SET status = 'failed', metrics = metrics || jsonb_build_object('failure', :reason::text)
WHERE model_id = :model_id;

-- name: active_model_summary
-- The active model of a unit for an objective and tag, without its arrays.
SELECT model_id, unit_id, tag, objective, mode, hyperparams, metrics, data_counts, trained_at, activated_at
FROM models
WHERE tenant = :tenant AND unit_id = :unit_id AND objective = :objective AND tag = :tag AND status = 'active';

-- name: load_model
-- A model with its arrays (one row).
SELECT m.tenant, m.model_id, m.unit_id, m.tag, m.objective, m.mode, m.metrics, m.trained_at,
       a.dim, a.item_ids, a.item_vectors, a.item_biases, a.prior_mean, a.prior_cov, a.calibration, a.extra,
       a.item_weights
FROM models m JOIN model_arrays a USING (model_id)
WHERE m.tenant = :tenant AND m.model_id = :model_id;

-- name: prune_models
-- Delete all but the newest :keep inactive versions of a unit's models (for an objective and tag).
DELETE FROM models
WHERE model_id IN (
    SELECT model_id FROM models
    WHERE tenant = :tenant AND unit_id = :unit_id AND objective = :objective AND tag = :tag AND status <> 'active'
    ORDER BY trained_at DESC, model_id DESC
    OFFSET :keep
);

-- name: list_models
-- Models with their status and metrics, newest first per unit (active and ready, or all).
SELECT model_id, unit_id, tag, objective, mode, status, hyperparams, metrics, data_counts,
       training_seconds, trained_at, activated_at
FROM models
WHERE tenant = :tenant AND (:include_retired OR status IN ('active', 'ready', 'training'))
ORDER BY unit_id, objective, tag, trained_at DESC;

-- name: nearest_ancestor_active_model
-- The active model (of :objective / :tag) of the nearest unit strictly above :unit_id.
WITH RECURSIVE above (unit_id, depth) AS (
    -- seed: the unit's parents (depth 1)
    SELECT parent, 1 FROM unit_children WHERE tenant = :tenant AND child = :unit_id
    UNION
    -- step: their parents, one level further up; the depth bound ends a walk round a cycle
    SELECT c.parent, a.depth + 1 FROM above a JOIN unit_children c ON c.tenant = :tenant AND c.child = a.unit_id
    WHERE a.depth < 64
)
SELECT m.model_id, m.unit_id, min(a.depth) AS depth
FROM above a JOIN models m ON m.tenant = :tenant AND m.unit_id = a.unit_id
WHERE m.status = 'active' AND m.objective = :objective AND m.tag = :tag AND m.unit_id <> :unit_id
GROUP BY m.model_id, m.unit_id
ORDER BY min(a.depth), m.unit_id
LIMIT 1;

-- name: retire_active_model
-- Stop serving the active model of a unit (requests fall back to the unit above).
UPDATE models SET status = 'retired'
WHERE tenant = :tenant AND unit_id = :unit_id AND objective = :objective AND tag = :tag AND status = 'active';
